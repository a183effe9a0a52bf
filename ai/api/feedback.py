"""POST /api/v1/ai/feedback (and /v1/feedback): rate an answer; a bad one leaves the cache."""

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from ai.api.chat import OpenAICompatibleApi
from ai.api.query import StrictCharField
from ai.cache.keys import EntryId
from ai.feedback import feedback_record
from saascore.api.lean import async_endpoint, json_body, json_response, validated
from saascore.api.schema import error_doc
from tenants.authentication import aauthenticate


class FeedbackInputSerializer(serializers.Serializer):
    request_id = StrictCharField(required=False, max_length=64, help_text="`x-saascore-request-id` of the answer.")
    cache_key = StrictCharField(required=False, max_length=64, help_text="`x-saascore-cache-key` of the answer.")
    rating = serializers.ChoiceField(choices=["good", "bad"])
    comment = StrictCharField(required=False, max_length=300, allow_blank=True, default="")

    def validate_cache_key(self, value: str) -> str:
        try:
            EntryId.parse(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        return value

    def validate(self, data: dict) -> dict:
        if ("request_id" in data) == ("cache_key" in data):
            raise serializers.ValidationError({"request_id": "name the answer by request_id or by cache_key (one)"})
        return data


class FeedbackOutputSerializer(serializers.Serializer):
    request_id = serializers.CharField(help_text="The rated request ('' when only its cache key was known).")
    cache_key = serializers.CharField(help_text="The cache entry of the answer ('' when it was not cached).")
    evicted = serializers.BooleanField(help_text="A bad rating dropped the cached answer (every tier, every alias).")
    labelled = serializers.BooleanField(help_text="The pair (question asked, cached question) was recorded.")


class FeedbackApi(APIView):
    @extend_schema(
        request=FeedbackInputSerializer,
        responses={
            200: FeedbackOutputSerializer,
            404: error_doc("Neither the request nor the cache key is in your ledger (or your cache)."),
            503: error_doc("The cache could not drop the answer now (the rating is kept); retry after `Retry-After`."),
        },
        summary="Rate an answer: a bad cached answer is dropped and teaches your verifier",
    )
    def post(self, request):
        raise NotImplementedError("served by ai.api.feedback.rate")


async def rate(request: HttpRequest) -> HttpResponse:
    tenant = (await aauthenticate(request)).tenant
    data = validated(FeedbackInputSerializer, json_body(request))
    rated = await feedback_record(
        tenant=tenant,
        rating=data["rating"],
        request_id=data.get("request_id"),
        cache_key=data.get("cache_key"),
        comment=data["comment"],
    )
    return json_response(rated.as_dict())


feedback_endpoint = async_endpoint(FeedbackApi, rate)
# /v1/feedback: the same handler, out of /api/schema/ like the rest of the OpenAI-compatible API
# (its errors take OpenAI's shape there).
openai_feedback_endpoint = async_endpoint(OpenAICompatibleApi, rate)
