"""POST /v1/chat/completions: OpenAI's chat API in front of the query flow.

The last message is the question (cached, embedded, routed, answered from the tenant's
documents); the messages before it are the conversation it belongs to, sent to the
model and digested into the cache scope (ai/context.py: ``context_digest``), so an
answer is only ever reused within the same conversation. ``stream: true`` answers with
Server-Sent Events in OpenAI's chunk format (ai/streaming.py), a hit replayed as pieces.
"""

import json
import logging
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from rest_framework.views import APIView

from ai.api.caller import caller_of
from ai.api.idempotency import aidempotent
from ai.api.openai_input import AUTO, ChatRequest, chat_request, invalid, named_route
from ai.cache import get_cache
from ai.context import QueryResult
from ai.llm.generate import UpstreamFailed, pieces
from ai.pipeline import answer_query
from ai.streaming import Live, stream_query
from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import asettings_for
from saascore.api.lean import async_endpoint, json_body
from saascore.api.openai_errors import openai_error
from tenants.authentication import aauthenticate

logger = logging.getLogger("saascore.api")


class OpenAICompatibleApi(APIView):
    """Documents nothing: the OpenAI-compatible API's reference is OpenAI's, and its errors
    have OpenAI's shape, not the project's (docs/decisions.md). ``schema = None`` keeps it
    out of ``/api/schema/``."""

    schema = None


def usage_of(result_usage: dict | None) -> dict:
    prompt = (result_usage or {}).get("input_tokens", 0)
    completion = (result_usage or {}).get("output_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(result: QueryResult) -> dict:
    return {
        "id": result.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model_used,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.response},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage_of(result.usage),
    }


async def chat(request: HttpRequest) -> HttpResponse:
    tenant = (await aauthenticate(request)).tenant
    body = json_body(request)
    asked = chat_request(body)
    settings = await asettings_for(tenant)
    if settings.cache_scope == TenantAISettings.CacheScope.USER and not asked.user:
        raise invalid("user", "required: this tenant keeps its cache per end user, so every request names its user")
    named = None if asked.model == AUTO else asked.model
    caller = caller_of(request, control=asked.control, metadata=body.get("metadata"), model=named)
    route = await named_route(tenant, asked.model)
    query = {
        "tenant": tenant, "query": asked.question, "user_id": asked.user, "request_id": request.request_id,
        "control": asked.control, "history": asked.history, "route": route, "caller": caller,
    }  # fmt: skip
    if not asked.stream:

        async def run(ledger_id: str) -> tuple[dict, dict]:
            result = await answer_query(**query, ledger_id=ledger_id)
            return completion(result), result.headers

        return await aidempotent(request, get_cache().guard, user_id=asked.user, fields=body, answer=run)
    answered = await stream_query(**query)
    if isinstance(answered, QueryResult):
        return _streaming(replay(answered, asked), answered.headers)
    try:  # the first piece before the headers: every model failing before it is still a 502
        first = await anext(answered.pieces)
    except StopAsyncIteration:
        first = ""
    response = _streaming(live_events(answered, asked, first, request.request_id), answered.headers)
    response.abandon = answered.pieces.aclose  # its client left before it started (saascore/asgi.py)
    return response


def _streaming(events: AsyncIterator[bytes], headers: dict) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    for name, value in {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}.items():
        response[name] = value
    return response


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Chunks:
    """The chunks of one streamed completion (OpenAI's ``chat.completion.chunk``)."""

    def __init__(self, request_id: str, model: str) -> None:
        self.base = {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def delta(self, delta: dict, finish: str | None = None) -> bytes:
        return _event({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def usage(self, usage: dict | None) -> bytes:
        return _event({**self.base, "choices": [], "usage": usage_of(usage)})


async def replay(result: QueryResult, asked: ChatRequest) -> AsyncIterator[bytes]:
    """A whole answer (a hit) as a stream of pieces, like a model's."""
    chunks = Chunks(result.request_id, result.model_used)
    yield chunks.delta({"role": "assistant", "content": ""})
    for piece in pieces(result.response):
        yield chunks.delta({"content": piece})
    yield chunks.delta({}, "stop")
    if asked.include_usage:
        yield chunks.usage(result.usage)
    yield DONE


async def live_events(live: Live, asked: ChatRequest, first: str, request_id: str) -> AsyncIterator[bytes]:
    """A miss's pieces as its model produces them. A failure mid-way ends the stream with an
    error event (the SDK raises it) and no ``[DONE]``."""
    chunks = Chunks(request_id, live.out.model)
    yield chunks.delta({"role": "assistant", "content": ""})
    try:
        if first:
            yield chunks.delta({"content": first})
        async for piece in live.pieces:
            yield chunks.delta({"content": piece})
    except UpstreamFailed as exc:
        yield _event(openai_error(502, {"code": exc.code, "message": exc.message, "details": exc.details})[1])
        return
    except Exception:
        logger.exception("stream of request %s failed", request_id)
        yield _event(openai_error(500, {"code": "internal_error", "message": "Internal error.", "details": {}})[1])
        return
    finally:  # the client gone too: the answer's stream settles now, not when it is collected
        await live.pieces.aclose()
    yield chunks.delta({}, live.out.finish_reason)
    if asked.include_usage:
        yield chunks.usage(live.usage)
    yield DONE


chat_endpoint = async_endpoint(OpenAICompatibleApi, chat, produces=("application/json", "text/event-stream"))
