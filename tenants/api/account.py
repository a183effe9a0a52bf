"""The tenant's own account and API keys. Keys are created in the admin or with
``manage.py apikey_create``: a leaked key must not be able to mint new ones."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from saascore.api.fields import StrictCharField
from tenants.audit import acting_as
from tenants.authentication import request_tenant
from tenants.selectors import api_key_get, api_key_history, api_key_list
from tenants.services import api_key_rename, api_key_revoke


class TenantDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        slug = serializers.SlugField()
        name = serializers.CharField()
        plan = serializers.CharField()

    @extend_schema(responses=OutputSerializer, summary="The tenant this API key belongs to")
    def get(self, request):
        return Response(self.OutputSerializer(request_tenant(request)).data)


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    display = serializers.CharField(help_text="Prefix of the key; the key itself is never shown again.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked = serializers.BooleanField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class ApiKeyListApi(APIView):
    @extend_schema(responses=ApiKeyOutputSerializer(many=True), summary="The tenant's API keys")
    def get(self, request):
        keys = api_key_list(tenant=request_tenant(request))
        return Response(ApiKeyOutputSerializer(keys, many=True).data)


class ApiKeyDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=100)

    @extend_schema(responses=ApiKeyOutputSerializer, summary="One API key of the tenant")
    def get(self, request, key_id: int):
        return Response(ApiKeyOutputSerializer(api_key_get(tenant=request_tenant(request), key_id=key_id)).data)

    @extend_schema(request=InputSerializer, responses=ApiKeyOutputSerializer, summary="Rename an API key")
    def patch(self, request, key_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with acting_as(api_key=request.auth):
            api_key = api_key_rename(tenant=request_tenant(request), key_id=key_id, **serializer.validated_data)
        return Response(ApiKeyOutputSerializer(api_key).data)

    @extend_schema(responses={200: ApiKeyOutputSerializer}, summary="Revoke an API key at once (irreversible)")
    def delete(self, request, key_id: int):
        with acting_as(api_key=request.auth):
            api_key = api_key_revoke(tenant=request_tenant(request), key_id=key_id)
        return Response(ApiKeyOutputSerializer(api_key).data, status=status.HTTP_200_OK)


class ApiKeyHistoryApi(APIView):
    """Who changed the key, when, and which of its fields from what to what (tenants/audit.py).
    Its hash and prefix are never in it; nor is ``last_used_at``, which is no change."""

    class KeyChangeSerializer(serializers.Serializer):
        at = serializers.DateTimeField(source="history_date")
        change = serializers.CharField(source="change_kind", help_text="created, changed or deleted")
        actor = serializers.CharField(
            source="history_actor", help_text='"admin <user>", "api key <id>", "command <name>" or "system"'
        )
        actor_api_key_id = serializers.IntegerField(source="history_api_key_id", allow_null=True)
        changes = serializers.DictField(
            source="history_changes", child=serializers.ListField(), help_text="field: [old value, new value]"
        )

    @extend_schema(responses=KeyChangeSerializer(many=True), summary="An API key's audit trail, newest first")
    def get(self, request, key_id: int):
        rows = api_key_history(tenant=request_tenant(request), key_id=key_id)
        return Response(self.KeyChangeSerializer(rows, many=True).data)
