from django.db import migrations

from tenants.rls import EnableTenantRLS


class Migration(migrations.Migration):
    dependencies = [("ai", "0002_initial")]
    operations = [
        EnableTenantRLS("RouterExample", shared=True),
        EnableTenantRLS("RouteRule", shared=True),
        EnableTenantRLS("TenantAISettings"),
    ]
