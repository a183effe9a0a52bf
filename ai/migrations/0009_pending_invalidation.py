import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from tenants.rls import CROSS_TENANT_READ_POLICY, EnableTenantRLS, cross_tenant_read_sql

TABLE = "ai_pendinginvalidation"


class Migration(migrations.Migration):
    dependencies = [
        ("ai", "0008_settings_audit"),
        ("tenants", "0003_rls_unscoped_role"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingInvalidation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["tenant", "id"], name="pendinginval_tenant_id")],
            },
        ),
        EnableTenantRLS("PendingInvalidation"),
        # Any process finds the invalidations it must apply without the unscoped role;
        # writes (and deletes) stay within the tenant of the transaction.
        migrations.RunSQL(cross_tenant_read_sql(TABLE), f'DROP POLICY {CROSS_TENANT_READ_POLICY} ON "{TABLE}"'),
    ]
