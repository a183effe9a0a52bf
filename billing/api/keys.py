"""An API key's own limits: read and set by another key of the same tenant (never by itself:
a leaked key must not lift its own limits). Another tenant's key is a 404: it does not exist."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.key_budget import key_budget_status
from billing.key_limits import api_key_limits_set
from saascore.api.schema import error_doc
from tenants.audit import acting_as
from tenants.authentication import request_tenant
from tenants.models import CACHE_CONTROLS, ApiKey
from tenants.scoping import tenant_scope
from tenants.selectors import api_key_get

MAX_INT = 2**31 - 1  # the columns' range (PostgreSQL integer): more is a 400, not a 500


class KeyLimitsSerializer(serializers.Serializer):
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    requests_per_minute = serializers.IntegerField(min_value=1, max_value=MAX_INT, allow_null=True, required=False)
    tokens_per_minute = serializers.IntegerField(min_value=1, max_value=MAX_INT, allow_null=True, required=False)
    max_parallel_requests = serializers.IntegerField(min_value=1, max_value=MAX_INT, allow_null=True, required=False)
    budget_usd = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True, required=False)
    budget_period = serializers.ChoiceField(choices=ApiKey.BudgetPeriod.values, required=False)
    soft_alert_ratio = serializers.DecimalField(max_digits=4, decimal_places=3, required=False)
    cache_controls = serializers.ListField(
        child=serializers.ChoiceField(choices=CACHE_CONTROLS), allow_null=True, required=False
    )
    metadata = serializers.DictField(required=False)


class KeyLimitsOutputSerializer(KeyLimitsSerializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    budget = serializers.DictField(help_text="budget_usd, period, spent_usd, soft_alert")


def _output(tenant, api_key: ApiKey) -> dict:
    with tenant_scope(tenant):
        budget = key_budget_status(tenant_id=tenant.pk, api_key=api_key)
    data = {name: getattr(api_key, name) for name in KeyLimitsSerializer().fields}
    return KeyLimitsOutputSerializer({**data, "id": api_key.pk, "name": api_key.name, "budget": budget}).data


class ApiKeyLimitsApi(APIView):
    @extend_schema(responses=KeyLimitsOutputSerializer, summary="An API key's own limits and its budget's state")
    def get(self, request, key_id: int):
        tenant = request_tenant(request)
        return Response(_output(tenant, api_key_get(tenant=tenant, key_id=key_id)))

    @extend_schema(
        request=KeyLimitsSerializer,
        responses={
            200: KeyLimitsOutputSerializer,
            403: error_doc("A key cannot change its own limits: use another key of the tenant."),
        },
        summary="Set some of an API key's limits (inside the tenant's; not the calling key's own)",
    )
    def patch(self, request, key_id: int):
        tenant = request_tenant(request)
        api_key_get(tenant=tenant, key_id=key_id)  # 404 for a key that is not this tenant's
        serializer = KeyLimitsSerializer(data=request.data)  # a malformed body is a 400 first, as everywhere
        serializer.is_valid(raise_exception=True)
        if request.auth.pk == key_id:
            raise PermissionDenied("A key cannot change its own limits; use another key of the tenant.")
        try:
            with acting_as(api_key=request.auth):
                api_key = api_key_limits_set(tenant=tenant, key_id=key_id, values=dict(serializer.validated_data))
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        return Response(_output(tenant, api_key))
