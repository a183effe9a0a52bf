"""POST /api/v1/ai/query: answer a question from the cache or the tenant's documents."""

import hashlib
import json
import re

import redis
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ai.cache import get_cache
from ai.llm.generate import UpstreamFailed
from ai.pipeline import answer_query
from saascore.api.errors import error_response
from saascore.api.schema import error_doc
from tenants.authentication import request_tenant

IDEMPOTENCY_TTL = 24 * 3600
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
        "X-Router-Confidence", str, OpenApiParameter.HEADER, response=[200],
        description="The router's confidence in [0, 1], when the query was routed.",
    ),
    OpenApiParameter(
        "Idempotent-Replay", str, OpenApiParameter.HEADER, response=[200], enum=["true"],
        description="Present when the answer is the stored one of an earlier request with this Idempotency-Key.",
    ),
]  # fmt: skip


def _idempotency_key(tenant, key: str) -> str:
    return f"{tenant.redis_tag}:idem:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class QueryApi(APIView):
    @extend_schema(
        request=QueryInputSerializer,
        responses={
            200: QueryOutputSerializer,
            402: error_doc("The monthly spend limit is reached (`details` has the figures); see `Retry-After`."),
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
        tenant = request_tenant(request)
        serializer = QueryInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not data["query"].strip():
            raise serializers.ValidationError({"query": "must not be blank"})

        idempotency = request.headers.get("Idempotency-Key")
        request_id = request.request_id
        replay_key = None
        if idempotency:
            if len(idempotency) > 200:
                raise serializers.ValidationError({"Idempotency-Key": "at most 200 characters"})
            replay_key = _idempotency_key(tenant, idempotency)
            request_id = "idem-" + replay_key.rsplit(":", 1)[-1]
            replayed = _replay(replay_key)
            if replayed is not None:
                return replayed

        try:
            result = answer_query(
                tenant=tenant,
                query=data["query"],
                user_id=data.get("user_id"),
                cache_mode=data["cache"],
                request_id=request_id,
            )
        except UpstreamFailed as exc:
            return error_response(
                502,
                "upstream_failed",
                "No model could answer: every model of the route failed or has no credentials.",
                {"attempts": [{"model": m, "reason": r} for m, r in exc.attempts], "request_id": request_id},
            )
        body = result.as_dict()
        headers = {"X-Request-ID": request_id, **result.headers}
        if result.routing:
            headers["X-Router-Confidence"] = f"{result.routing['confidence']:.4f}"
        if replay_key:
            _remember(replay_key, body, headers)
        return Response(body, headers=headers)


def _replay(key: str) -> Response | None:
    try:
        stored = get_cache().client.get(key)
    except redis.RedisError:
        return None
    if not stored:
        return None
    saved = json.loads(stored)
    return Response(saved["body"], headers={**saved["headers"], "Idempotent-Replay": "true"})


def _remember(key: str, body: dict, headers: dict) -> None:
    try:
        get_cache().client.set(key, json.dumps({"body": body, "headers": headers}, default=str), ex=IDEMPOTENCY_TTL)
    except redis.RedisError:
        pass  # the ledger still bills the request once: its request id is the key's
