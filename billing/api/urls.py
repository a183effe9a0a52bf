from django.urls import path

from billing.api.keys import ApiKeyLimitsApi
from billing.api.usage import BillingSummaryApi, BillingUsageApi, BillingUsageCsvApi

urlpatterns = [
    path("billing/summary", BillingSummaryApi.as_view(), name="billing-summary"),
    path("billing/usage", BillingUsageApi.as_view(), name="billing-usage"),
    path("keys/<int:key_id>/limits", ApiKeyLimitsApi.as_view(), name="apikey-limits"),
    path("billing/usage.csv", BillingUsageCsvApi.as_view(), name="billing-usage-csv"),
]
