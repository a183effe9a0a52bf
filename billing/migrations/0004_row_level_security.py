from django.db import migrations

from tenants.rls import EnableTenantRLS


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_spendcounter_tenantbudget_usagerecord")]
    operations = [EnableTenantRLS("UsageRecord"), EnableTenantRLS("TenantBudget"), EnableTenantRLS("SpendCounter")]
