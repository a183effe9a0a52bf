"""What the OpenAI-compatible endpoints read from a request: the chat body, its cache
controls, the model a caller names. Each problem is a 400 naming its field (``param``)."""

from dataclasses import dataclass

from rest_framework import serializers

from ai.context import CacheControl
from ai.router.table import aroute_table, model_route
from catalog.selectors import amodel_names
from saascore.api.errors import ApiError
from tenants.models import Tenant

AUTO = "auto"
ROLES = {"system", "developer", "user", "assistant"}
MAX_QUESTION_CHARS = 8000  # as POST /api/v1/ai/query
MAX_MESSAGES = 256
MAX_NAMESPACE = 64
CACHE_KEYS = {"no-cache", "no-store", "ttl", "s-maxage", "namespace"}


def invalid(field: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError({field: [message]})


@dataclass(frozen=True)
class ChatRequest:
    model: str
    question: str  # the last message, the user's
    history: tuple[dict, ...]  # every message before it: role and text
    stream: bool
    include_usage: bool
    user: str | None
    control: CacheControl


def storable(text: str, field: str) -> str:
    """``text``, refused (400) if it cannot be stored as it is: a lone surrogate (not UTF-8) or a
    NUL character (PostgreSQL's text refuses it: the ledger row of a later hit would fail)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise invalid(field, "text in UTF-8 (a lone surrogate is not)") from None
    if "\x00" in text:
        raise invalid(field, "text without NUL characters")
    return text


def _text(content, field: str) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return storable(content, field)
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise invalid(field, "only text parts are supported")
        return storable("".join(p["text"] for p in content), field)
    raise invalid(field, "a string or a list of text parts")


def _messages(messages) -> tuple[str, tuple[dict, ...]]:
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise invalid("messages", f"a list of 1 to {MAX_MESSAGES} messages")
    turns = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or message["role"] not in ROLES:
            raise invalid(f"messages[{n}].role", f"one of {', '.join(sorted(ROLES))} (tools are not supported)")
        role = "system" if message["role"] == "developer" else message["role"]
        turns.append({"role": role, "content": _text(message.get("content"), f"messages[{n}].content")})
    last = turns[-1]
    if last["role"] != "user" or not last["content"].strip():
        raise invalid("messages", "the last message must be the user's question, not blank")
    if len(last["content"]) > MAX_QUESTION_CHARS:
        raise invalid("messages", f"the last message is longer than {MAX_QUESTION_CHARS} characters")
    return last["content"].strip(), tuple(turns[:-1])


def _seconds(control: dict, name: str, minimum: int) -> int | None:
    value = control.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(f"cache.{name}", f"a whole number of seconds, at least {minimum}")
    return value


def cache_control(control) -> CacheControl:
    """LiteLLM's per-request cache controls: ``{"no-cache": true, "no-store": true, "ttl": 60,
    "s-maxage": 600, "namespace": "docs-v2"}``, each optional; any other key is refused."""
    if control is None:
        return CacheControl()
    if not isinstance(control, dict):
        raise invalid("cache", "an object with no-cache, no-store, ttl, s-maxage, namespace")
    if unknown := set(control) - CACHE_KEYS:
        raise invalid("cache", f"unknown control {sorted(unknown)[0]!r}; known: {', '.join(sorted(CACHE_KEYS))}")
    flags = {name: control.get(name, False) for name in ("no-cache", "no-store")}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise invalid(f"cache.{name}", "true or false")
    namespace = control.get("namespace") or ""
    if not isinstance(namespace, str) or len(namespace) > MAX_NAMESPACE or not namespace.isprintable():
        raise invalid("cache.namespace", f"up to {MAX_NAMESPACE} printable characters")
    return CacheControl(
        read=not flags["no-cache"],
        write=not flags["no-store"],
        ttl=_seconds(control, "ttl", 1),
        max_age=_seconds(control, "s-maxage", 0),
        namespace=namespace,
    )


def end_user(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128 or not value.isprintable():
        raise invalid("user", "up to 128 printable characters")
    return value


def chat_request(body) -> ChatRequest:
    if not isinstance(body, dict):
        raise invalid("messages", "the body must be a JSON object with model and messages")
    model = body.get("model")
    if not isinstance(model, str) or not 1 <= len(model) <= 100 or not model.isprintable():
        raise invalid("model", f'a model name from GET /v1/models, or "{AUTO}"')
    if body.get("n") not in (None, 1):
        raise invalid("n", "only one choice (n = 1) is supported")
    if body.get("tools") or body.get("functions"):
        raise invalid("tools", "tools and functions are not supported")
    stream = body.get("stream") or False
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise invalid("stream", "stream is true or false; stream_options an object")
    question, history = _messages(body.get("messages"))
    return ChatRequest(
        model=model,
        question=question,
        history=history,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        user=end_user(body.get("user")),
        control=cache_control(body.get("cache")),
    )


class ModelNotFound(ApiError):
    status, code = 404, "model_not_found"


class ModelNotAllowed(ApiError):
    status, code = 403, "model_not_allowed"


async def named_route(tenant: Tenant, model: str) -> tuple[str, tuple[str, ...]] | None:
    """The route of the model a caller named (None for "auto": the router chooses).

    A tenant may use the models of its route table, each route's model and fallbacks
    (ai/router/table.py: ``table_models``): a model of the catalog outside them is 403, a
    name the catalog does not know 404, as OpenAI answers a model one may not use."""
    if model == AUTO:
        return None
    route = model_route(await aroute_table(tenant), model)
    if route is not None:
        return route
    if model not in await amodel_names():  # one cached set: a new name costs no query
        raise ModelNotFound(f"The model `{model}` does not exist; GET /v1/models lists the ones you may use.")
    raise ModelNotAllowed(f"The model `{model}` is not in this tenant's routes; GET /v1/models lists those it may use.")
