"""Row-level security no longer admits a setting the application could write
(``app.rls_bypass``): cross-tenant rows are for the unscoped role only (tenants/rls.py)."""

from django.db import migrations

from tenants.rls import realign_policies_sql


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_row_level_security"),
        ("ai", "0008_settings_audit"),
        ("billing", "0004_row_level_security"),
    ]
    operations = [migrations.RunSQL(realign_policies_sql(), migrations.RunSQL.noop)]
