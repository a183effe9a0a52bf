from django.urls import path

from tenants.api.account import ApiKeyDetailApi, ApiKeyHistoryApi, ApiKeyListApi, TenantDetailApi

urlpatterns = [
    path("tenant", TenantDetailApi.as_view(), name="tenant-detail"),
    path("keys", ApiKeyListApi.as_view(), name="apikey-list"),
    path("keys/<int:key_id>", ApiKeyDetailApi.as_view(), name="apikey-detail"),
    path("keys/<int:key_id>/history", ApiKeyHistoryApi.as_view(), name="apikey-history"),
]
