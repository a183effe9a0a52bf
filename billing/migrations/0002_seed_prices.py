from django.db import migrations

from catalog.seed import catalog_seed


def seed(apps, schema_editor):
    catalog_seed(apps.get_model("billing", "ModelPrice"), schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
