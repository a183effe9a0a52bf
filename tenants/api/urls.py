from django.urls import path

from tenants.api.account import ApiKeyDetailApi, ApiKeyListApi, TenantDetailApi

urlpatterns = [
    path("tenant", TenantDetailApi.as_view(), name="tenant-detail"),
    path("keys", ApiKeyListApi.as_view(), name="apikey-list"),
    path("keys/<int:key_id>", ApiKeyDetailApi.as_view(), name="apikey-detail"),
]
