from django.db import migrations

from tenants.rls import EnableTenantRLS


class Migration(migrations.Migration):
    dependencies = [("ai", "0005_documents")]
    operations = [EnableTenantRLS("Document"), EnableTenantRLS("Chunk")]
