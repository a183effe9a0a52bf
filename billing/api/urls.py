from django.urls import path

from billing.api.usage import BillingSummaryApi, BillingUsageApi, BillingUsageCsvApi

urlpatterns = [
    path("billing/summary", BillingSummaryApi.as_view(), name="billing-summary"),
    path("billing/usage", BillingUsageApi.as_view(), name="billing-usage"),
    path("billing/usage.csv", BillingUsageCsvApi.as_view(), name="billing-usage-csv"),
]
