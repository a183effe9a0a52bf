from django.db import migrations

from tenants.rls import EnableTenantRLS


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [EnableTenantRLS("Membership"), EnableTenantRLS("ApiKey")]
