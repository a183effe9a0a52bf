"""The model catalog moves out of billing: the table stays (``billing_modelprice``), only
Django's state and the content type change app."""

import django.utils.timezone
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.using(schema_editor.connection.alias).filter(app_label="billing", model="modelprice").update(
        app_label="catalog"
    )


def move_content_type_back(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.using(schema_editor.connection.alias).filter(app_label="catalog", model="modelprice").update(
        app_label="billing"
    )


class Migration(migrations.Migration):
    initial = True
    dependencies = [("billing", "0005_spend_reservations"), ("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelPrice",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "provider",
                            models.CharField(
                                choices=[
                                    ("openai", "OpenAI"),
                                    ("anthropic", "Anthropic"),
                                    ("local", "Local (no network)"),
                                ],
                                max_length=32,
                            ),
                        ),
                        ("model", models.CharField(max_length=100)),
                        ("input_per_million", models.DecimalField(decimal_places=6, max_digits=12)),
                        ("output_per_million", models.DecimalField(decimal_places=6, max_digits=12)),
                        ("effective_from", models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        "db_table": "billing_modelprice",
                        "ordering": ["model", "-effective_from"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("model", "effective_from"), name="modelprice_model_from_uniq"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
