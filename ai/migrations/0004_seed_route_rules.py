from django.db import migrations

from ai.router.table import route_rules_seed


def seed(apps, schema_editor):
    route_rules_seed(apps.get_model("ai", "RouteRule"), schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("ai", "0003_row_level_security"), ("billing", "0002_seed_prices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
