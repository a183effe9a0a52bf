from django.contrib import admin

from catalog.models import ModelPrice
from tenants.admin import OperatorOnlyAdmin


@admin.register(ModelPrice)
class ModelPriceAdmin(OperatorOnlyAdmin):
    list_display = ["model", "provider", "input_per_million", "output_per_million", "effective_from"]
    list_filter = ["provider", "model"]

    def has_change_permission(self, request, obj=None):
        return False  # a price change is a new row: history is never rewritten
