"""ModelPrice now belongs to the catalog app (catalog/migrations/0001): billing forgets it
in Django's state only; the table is the catalog's now, under the same name."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_spend_reservations"), ("catalog", "0001_initial")]
    operations = [migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ModelPrice")])]
