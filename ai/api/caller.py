"""What both query APIs read about the caller besides the question: its API key's own rules
(models, cache controls) and its tags. Each problem is a 4xx naming its field.

Tags come from the ``x-saascore-tags`` header (``a,b``) and from ``metadata.tags`` in the body
(a list, or ``a,b``); both are merged. They reach the ledger only: never a metric label (their
number is the caller's to choose) nor a log line. Each is at most ``MAX_TAG_LENGTH`` characters
of letters, digits and ``. _ : / @ + -``, at most ``MAX_TAGS`` of them.
"""

import re

from django.http import HttpRequest
from rest_framework import serializers

from ai.context import CacheControl, Caller
from billing.models import MAX_TAG_LENGTH, MAX_TAGS
from saascore.api.errors import ApiError
from tenants.models import ApiKey

TAG = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{{0,{MAX_TAG_LENGTH - 1}}}$", re.ASCII)
TAGS_HEADER = "x-saascore-tags"
MAX_METADATA_KEYS = 16


class CacheControlNotAllowed(ApiError):
    status, code = 403, "cache_control_not_allowed"


def _split(value, field: str) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return [part.strip() for part in value if part.strip()]
    raise serializers.ValidationError({field: ["a list of strings, or one string of comma-separated tags"]})


def caller_tags(request: HttpRequest, metadata) -> tuple[str, ...]:
    """The request's tags, checked and without repeats (400 for a bad one)."""
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_KEYS):
        raise serializers.ValidationError({"metadata": [f"an object of at most {MAX_METADATA_KEYS} keys"]})
    tags = _split(request.headers.get(TAGS_HEADER, ""), TAGS_HEADER)
    if metadata and "tags" in metadata:
        tags += _split(metadata["tags"], "metadata.tags")
    unique = tuple(dict.fromkeys(tags))
    field = "metadata.tags" if metadata and "tags" in metadata else TAGS_HEADER
    if len(unique) > MAX_TAGS:
        raise serializers.ValidationError({field: [f"at most {MAX_TAGS} tags"]})
    if not all(TAG.match(tag) for tag in unique):
        raise serializers.ValidationError(
            {field: [f"each tag: 1 to {MAX_TAG_LENGTH} of letters, digits and . _ : / @ + - (not first)"]}
        )
    return unique


def controls_used(control: CacheControl) -> list[str]:
    """The cache controls a request sends, by LiteLLM's names."""
    sent = {"no-cache": not control.read, "no-store": not control.write, "ttl": control.ttl is not None,
            "s-maxage": control.max_age is not None, "namespace": bool(control.namespace)}  # fmt: skip
    return [name for name, used in sent.items() if used]


def check_cache_controls(api_key: ApiKey, control: CacheControl) -> None:
    """403 when the key sends a cache control it was not given."""
    if api_key.cache_controls is None:
        return
    refused = [name for name in controls_used(control) if name not in api_key.cache_controls]
    if refused:
        allowed = ", ".join(api_key.cache_controls) or "none"
        raise CacheControlNotAllowed(
            f"This API key may not use the cache control {refused[0]!r} (it may use: {allowed}).",
            details={"cache_controls": list(api_key.cache_controls), "refused": refused},
        )


def check_named_model(api_key: ApiKey, model: str | None) -> None:
    """403 when the key names a model outside its own list (``auto`` is checked on the route)."""
    if model is not None and api_key.allowed_models and model not in api_key.allowed_models:
        raise ApiError(
            f"This API key may not use the model `{model}`; it may use {', '.join(api_key.allowed_models)}.",
            status=403,
            code="model_not_allowed",
            details={"allowed_models": list(api_key.allowed_models)},
        )


def caller_of(request: HttpRequest, *, control: CacheControl, metadata, model: str | None = None) -> Caller:
    """The caller of an authenticated request: its key (checked against the request) and tags."""
    api_key: ApiKey = request.auth
    check_cache_controls(api_key, control)
    check_named_model(api_key, model)
    return Caller(api_key=api_key, tags=caller_tags(request, metadata))
