from django.db import migrations

from ai.router.table import route_rules_seed
from tenants.rls import owner_writes


def seed(apps, schema_editor):
    model = apps.get_model("ai", "RouteRule")
    with owner_writes(schema_editor, model._meta.db_table):
        route_rules_seed(model, schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("ai", "0003_row_level_security"), ("billing", "0002_seed_prices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
