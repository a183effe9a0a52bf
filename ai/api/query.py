"""POST /api/v1/ai/query: answer a question from the cache or the tenant's documents."""

import re

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from ai.api.caller import caller_of
from ai.api.idempotency import aidempotent
from ai.cache import get_cache
from ai.context import CacheControl
from ai.pipeline import answer_query
from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import asettings_for
from saascore.api.lean import async_endpoint, json_body, validated
from saascore.api.schema import error_doc
from tenants.authentication import aauthenticate

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:@+-]+$")


class StrictCharField(serializers.CharField):
    """A JSON string, not a number or boolean coerced into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryInputSerializer(serializers.Serializer):
    query = StrictCharField(min_length=1, max_length=8000, trim_whitespace=True)
    user_id = StrictCharField(required=False, max_length=128, allow_blank=False)
    cache = serializers.ChoiceField(choices=["auto", "bypass", "refresh"], default="auto")
    metadata = serializers.JSONField(
        required=False, help_text='{"tags": ["a", "b"]} (or the x-saascore-tags header): usage is grouped by tag'
    )

    def validate_user_id(self, value: str) -> str:
        if not _SAFE_ID.match(value):
            raise serializers.ValidationError("Letters, digits and . _ : @ + - only.")
        return value


class QueryOutputSerializer(serializers.Serializer):
    response = serializers.CharField()
    source = serializers.ChoiceField(choices=["cache", "llm"])
    cache = serializers.DictField(help_text="tier (exact|semantic|null), similarity, threshold")
    model_used = serializers.CharField()
    routing = serializers.DictField(allow_null=True, help_text="intent, complexity, model, cache_strategy, confidence")
    citations = serializers.ListField(child=serializers.DictField())
    usage = serializers.DictField(help_text="input_tokens, output_tokens, cost_usd, saved_usd (USD as strings)")
    latency_ms = serializers.FloatField()
    request_id = serializers.CharField()


_QUERY_RESPONSE_HEADERS = [
    OpenApiParameter(
        "X-Cache", str, OpenApiParameter.HEADER, response=[200], required=True,
        enum=["HIT-EXACT", "HIT-SEMANTIC", "MISS", "BYPASS"], description="Where the answer came from.",
    ),
    OpenApiParameter(
        "x-saascore-cache", str, OpenApiParameter.HEADER, response=[200], required=True,
        enum=["HIT-EXACT", "HIT-SEMANTIC", "MISS", "BYPASS"], description="X-Cache's value (the name both APIs use).",
    ),
    OpenApiParameter(
        "x-saascore-similarity", str, OpenApiParameter.HEADER, response=[200],
        description="A hit's cosine similarity to the cached question (1.0000 for an exact hit).",
    ),
    OpenApiParameter(
        "x-saascore-cache-key", str, OpenApiParameter.HEADER, response=[200],
        description="The cache entry's id within this tenant (a hit, or a miss that stored its answer).",
    ),
    OpenApiParameter(
        "x-saascore-request-id", str, OpenApiParameter.HEADER, response=[200], required=True,
        description="The request id (as X-Request-ID).",
    ),
    OpenApiParameter(
        "X-Router-Confidence", str, OpenApiParameter.HEADER, response=[200],
        description="The router's confidence in [0, 1], when the query was routed.",
    ),
    OpenApiParameter(
        "Idempotent-Replay", str, OpenApiParameter.HEADER, response=[200], enum=["true"],
        description="Present when the answer is the stored one of an earlier request with this Idempotency-Key.",
    ),
]  # fmt: skip


class QueryApi(APIView):
    """The query endpoint's description for the OpenAPI schema; requests are answered by
    the async ``answer`` below (saascore/api/lean.py: ``async_endpoint``)."""

    @extend_schema(
        request=QueryInputSerializer,
        responses={
            200: QueryOutputSerializer,
            402: error_doc("The monthly spend limit is reached (`details` has the figures); see `Retry-After`."),
            409: error_doc("The first request with this `Idempotency-Key` has not answered yet; see `Retry-After`."),
            422: error_doc("This `Idempotency-Key` was used with another request body."),
            429: error_doc("The per-minute request limit is reached; see `Retry-After`."),
            502: error_doc("Every model of the route failed; `details.attempts` gives each one's reason."),
        },
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            *_QUERY_RESPONSE_HEADERS,
        ],
        summary="Answer a question (cache, routing, RAG)",
    )
    def post(self, request):
        raise NotImplementedError("served by ai.api.query.answer")


async def answer(request: HttpRequest) -> HttpResponse:
    client = await aauthenticate(request)
    tenant = client.tenant
    data = validated(QueryInputSerializer, json_body(request))
    if not data["query"].strip():
        raise serializers.ValidationError({"query": "must not be blank"})
    settings = await asettings_for(tenant)
    if settings.cache_scope == TenantAISettings.CacheScope.USER and not data.get("user_id"):
        raise serializers.ValidationError(
            {"user_id": "required: this tenant keeps its cache per end user, so every query names its user"}
        )
    caller = caller_of(request, control=CacheControl.from_mode(data["cache"]), metadata=data.get("metadata"))

    async def run(ledger_id: str) -> tuple[dict, dict]:
        result = await answer_query(
            tenant=tenant,
            query=data["query"],
            user_id=data.get("user_id"),
            cache_mode=data["cache"],
            request_id=request.request_id,
            ledger_id=ledger_id,
            caller=caller,
        )
        headers = dict(result.headers)
        if result.routing:
            headers["X-Router-Confidence"] = f"{result.routing['confidence']:.4f}"
        return result.as_dict(), headers

    return await aidempotent(request, get_cache().guard, user_id=data.get("user_id"), fields=dict(data), answer=run)


query_endpoint = async_endpoint(QueryApi, answer)
