"""The query flow, streamed (the OpenAI-compatible API's ``stream: true``).

Everything before the generation is ai/pipeline.py's (rate limit, both cache tiers,
routing, single flight), and so are the spend reservation and the retrieval: a refusal
or a failure until then is an HTTP error, before any byte of the stream. Then:

- a hit (and an out-of-scope question's fixed answer) is a whole ``QueryResult``; the
  caller replays it in pieces (``ai.llm.generate.pieces``);
- a miss is a ``Live`` answer whose ``pieces`` come from its model as it produces them
  (ai/llm/generate.py: ``generate_stream``, the upstream through the async client).

Guarantees:
- Only a stream that ended normally is stored in the cache. One the client abandoned or
  that failed mid-way is not, and its ledger row bills what was produced: the upstream's
  token counts when it sent them, else the local tokenizer's count of the prompt sent
  and of the text produced.
- However the stream ends, its single flight, its spend reservation and its API key's parallel
  slot are released.
- No thread is held while the upstream produces: the stream is a coroutine.
- The miss's preparation (routing to retrieval) holds a permit of ai/miss_gate.py, given
  back before the stream starts, whatever happens.

Not guaranteed: an abandoned stream is noticed when the server next waits on the client
or the upstream, so the upstream may have produced (and is billed for) a little more
than the client received.
"""

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ai.cache import SemanticCache, get_cache
from ai.context import NOBODY, CacheControl, Caller, QueryContext, QueryResult, Routed
from ai.llm.generate import Streamed, UpstreamFailed, generate_stream
from ai.miss_gate import Permit
from ai.pipeline import (
    RETRIEVE_K,
    Miss,
    _answered,
    _complete,
    _context,
    _headers,
    _lookup,
    _record,
    _router_billed_if_refused,
    _store,
    _stored_as,
    _usage_dict,
)
from ai.rag.retrieval import retrieve
from ai.router.decisions import Intent
from billing.admission import Admission, arelease, areserve
from saascore import door, metrics
from saascore.pools import in_db
from tenants.models import Tenant

logger = logging.getLogger("saascore.query")


@dataclass
class Live:
    """A miss being answered as a stream: iterate ``pieces`` once. ``headers`` are known
    before the first piece; ``out`` (the model, the text so far) fills as it streams;
    ``usage`` is set when the stream has ended and its ledger row is written."""

    routed: Routed
    headers: dict
    out: Streamed = field(default_factory=Streamed)
    pieces: AsyncIterator[str] | None = None
    usage: dict | None = None
    stored: str = ""


async def stream_query(
    *, tenant: Tenant, query: str, user_id: str | None, request_id: str, control: CacheControl,
    history: tuple[dict, ...] = (), route: tuple[str, tuple[str, ...]] | None = None, caller: Caller = NOBODY,
) -> QueryResult | Live:  # fmt: skip
    """A hit's whole answer, or a miss's ``Live`` stream. Raises as ``answer_query`` before
    the stream starts (AdmissionRefused, the database's unavailability); a failure of every
    model before the first piece raises UpstreamFailed from ``pieces``."""
    started = time.perf_counter()
    async with door.entered(), Permit() as permit:  # given back on return, before the stream starts
        ctx = await _context(
            tenant=tenant, query=query, user_id=user_id, request_id=request_id, ledger_id=None,
            control=control, history=history, route=route, caller=caller,
        )  # fmt: skip
        try:  # the key's parallel slot is held by the stream (released when it settles), else freed here
            live = await _start(ctx, started, permit)
        except BaseException:
            await ctx.admission.arelease()
            raise
    if isinstance(live, QueryResult):
        await ctx.admission.arelease()
    return live


async def _start(ctx: QueryContext, started: float, permit: Permit) -> QueryResult | Live:
    cache = get_cache()
    found = await _lookup(ctx, cache, permit)
    if isinstance(found, QueryResult):
        return _answered(ctx, found, started)
    if found.routed.decision.intent == Intent.ERROR:  # the fixed answer: nothing to stream from
        return _answered(ctx, await _complete(ctx, cache, found, permit), started)
    try:
        await permit.acquire()  # a follower whose leader left no answer: its turn again
        async with _router_billed_if_refused(ctx, found.routed):
            admission = await areserve(tenant=ctx.tenant, api_key=ctx.caller.api_key)
    except BaseException:
        await _release(found, None)
        raise
    try:
        chunks = await in_db(retrieve, tenant=ctx.tenant, vector=found.routed.vector, k=RETRIEVE_K)
    except BaseException:
        await _release(found, admission)
        raise
    routed = found.routed
    headers = _headers(ctx, "BYPASS" if routed.threshold is None else "MISS")
    headers["X-Router-Confidence"] = f"{routed.decision.confidence:.4f}"
    live = Live(routed, headers)
    live.pieces = _pieces(ctx, cache, found, admission, chunks, live, started)
    return live


async def _pieces(
    ctx: QueryContext, cache: SemanticCache, miss: Miss, admission: Admission, chunks: list, live: Live,
    started: float,
) -> AsyncIterator[str]:  # fmt: skip
    complete = False
    try:
        budget = admission.max_cost - await in_db(miss.routed.spent.cost)
        async for piece in generate_stream(
            query=ctx.query, chunks=chunks, chain=miss.chain, out=live.out, budget=budget, history=ctx.history
        ):
            yield piece
        complete = True
    finally:  # the end, the client gone (GeneratorExit, CancelledError) or a failure
        await _settle(ctx, cache, miss, admission, live, complete, started)


async def _release(miss: Miss, admission: Admission | None) -> None:
    if miss.flight is not None:
        await miss.flight.arelease()
    if admission is not None:
        await arelease(admission)


async def _settle(
    ctx: QueryContext, cache: SemanticCache, miss: Miss, admission: Admission, live: Live, complete: bool,
    started: float,
) -> None:  # fmt: skip
    """Store a complete answer (before the flight is released: followers read it), free the
    flight and the key's parallel slot, bill what was produced, and only then end the spend
    reservation (ended before the row, its budget would be free while the cost is counted nowhere)."""
    routed = miss.routed
    try:
        try:
            answer = await live.out.generation()
            live.stored = await _store(ctx, cache, routed, answer) if complete else "not_cached:incomplete"
        finally:
            await _release(miss, None)
            await ctx.admission.arelease()
        seconds = time.perf_counter() - started
        if not answer.model:  # no model produced anything: a zero-cost error row, as a whole answer's
            await _record(ctx, routed.spent.usage(ctx, source="error", model=routed.decision.model))
            metrics.query_count(tenant=ctx.tenant, source="error", seconds=seconds)
            return
        tokens = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
        row = await _record(
            ctx, routed.spent.usage(ctx, source="llm", model=answer.model, **tokens, **_stored_as(ctx, live.stored))
        )
        live.usage = _usage_dict(row)
        metrics.query_count(tenant=ctx.tenant, source="llm", seconds=seconds)
        logger.info(
            "query streamed: model=%s complete=%s stored=%s latency_ms=%.1f",
            answer.model, complete, live.stored, seconds * 1000,
            extra={"source": "llm", "model": answer.model, "complete": complete, "latency_ms": seconds * 1000},
        )  # fmt: skip
    except Exception:
        logger.exception("settling the stream of request %s failed", ctx.request_id)
    finally:
        try:
            await arelease(admission)
        except Exception:  # an expiry ends it anyway (AI["SPEND_RESERVATION_SECONDS"])
            logger.exception("ending the reservation of request %s failed", ctx.request_id)


__all__ = ["Live", "UpstreamFailed", "stream_query"]
