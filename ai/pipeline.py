"""The query flow, async end to end, in the reference article's order with the exact tier
first and one shared embedding:

authenticate -> rate limit -> exact tier -> embed once -> route -> threshold from
confidence -> semantic tier -> (miss) single flight -> spend reservation ->
retrieve -> generate with the routed model and its fallbacks, capped to the
reservation -> cache the answer -> usage row (group commit) -> metrics.

Redis through the asyncio client (saascore/redis/ops.py), models through the
openai async client; CPU work (embedding, routing, the verifier, the local
answerer) in the CPU pool and PostgreSQL (retrieval, a reservation, a row-cache
miss) in the DB pool: the event loop only waits. A hit runs no SQL: its key,
settings and prices come from per-process caches, its ledger row goes in with
other requests' rows (billing/group_commit.py), and it reserves nothing (it costs
nothing to answer). Network calls happen outside database transactions.

A miss prepares (embedding to retrieval) only with a permit of ai/miss_gate.py, a few per
process at once, taken after the exact tier missed and given back just before the
upstream call: a burst of misses waits in line instead of slowing every hit.
"""

import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from ai.cache import CacheHit, CacheScope, SemanticCache, get_cache
from ai.cache.entries import CacheEntry
from ai.cache.keys import query_hash
from ai.cache.pii import personal_data_kinds, personal_data_outside
from ai.cache.singleflight import Flight
from ai.context import (
    NOBODY,
    NOTHING_SPENT,
    CacheControl,
    Caller,
    QueryContext,
    QueryResult,
    Routed,
    Spent,
    context_digest,
)  # fmt: skip
from ai.embeddings import get_embedder
from ai.embeddings.base import Embedder, Embeddings
from ai.llm.generate import Generation, UpstreamFailed, chain_deadline, generate, model_chain
from ai.miss_gate import Permit
from ai.rag.retrieval import retrieve
from ai.router.decisions import Intent
from ai.router.service import route_query
from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import asettings_for
from billing.admission import Admission, arelease, areserve
from billing.group_commit import ledger
from billing.key_admission import aadmit
from billing.services import Usage
from saascore import door, metrics
from saascore.api.errors import ApiError
from saascore.pools import in_background, in_cpu, in_db
from tenants.models import Tenant

logger = logging.getLogger("saascore.query")

RETRIEVE_K = 5
ERROR_ANSWER = "I can only help with questions about this service and its documents."


def _usage_dict(row: dict) -> dict:
    return {
        "input_tokens": row["input_tokens"] + row["router_input_tokens"],
        "output_tokens": row["output_tokens"] + row["router_output_tokens"],
        "cost_usd": str(row["cost"]),
        "saved_usd": str(row["saved"]),
    }


async def _record(ctx: QueryContext, usage: Usage, *, journaled: bool = False) -> dict:
    row = await ledger.arecord(tenant_id=ctx.tenant.pk, usage=usage, journaled=journaled)
    metrics.usage_count(tenant=ctx.tenant, row=row)
    if ctx.admission is not None:  # the key's tokens per minute, from real usage
        await ctx.admission.acount(row)
    return row


@asynccontextmanager
async def _router_billed_if_refused(ctx: QueryContext, routed: Routed):
    """A request refused after its routing (its spend limit, a model its key may not use)
    still paid for the LLM router if one was asked: that is billed, as an error row under
    the request's own id. Routing that cost nothing leaves no row."""
    try:
        yield
    except ApiError:
        if routed.spent.router_input_tokens or routed.spent.router_output_tokens:
            await _record(ctx, routed.spent.usage(ctx, source="error", model=routed.decision.model))
        raise


def _headers(ctx: QueryContext, state: str, *, similarity: float | None = None, qhash: str | None = None) -> dict:
    """The cache's response headers, the same on both APIs (``X-Cache`` is the older name)."""
    headers = {"X-Cache": state, "x-saascore-cache": state, "x-saascore-request-id": ctx.request_id}
    if ctx.admission is not None:
        headers.update(ctx.admission.headers())  # x-ratelimit-*: OpenAI's names
    if similarity is not None:
        headers["x-saascore-similarity"] = f"{similarity:.4f}"
    if qhash is not None:
        headers["x-saascore-cache-key"] = ctx.scope.entry_id(qhash)
    return headers


async def _hit(ctx: QueryContext, hit: CacheHit, routed: Routed | None = None) -> QueryResult:
    """A cache hit of any tier (``routed`` None: an exact hit before embedding and routing):
    its usage row (what it saved) and the response."""
    entry = hit.entry
    spent = routed.spent if routed else NOTHING_SPENT
    routing = routed.routing if routed else None
    threshold = routed.threshold if routed else hit.threshold
    usage = spent.usage(
        ctx,
        source=f"cache_{hit.tier}",
        model=routing["model"] if routing else entry.model,
        saved_input_tokens=entry.input_tokens,
        saved_output_tokens=entry.output_tokens,
        cached_question=entry.query[:500],
        cache_key=ctx.scope.entry_id(qhash := hit.member or query_hash(ctx.query)),
        asked_question="" if personal_data_kinds(ctx.query) else ctx.query[:500],
    )
    row = await _record(ctx, usage, journaled=True)  # a hit reserved nothing: it answers before the commit
    return QueryResult(
        response=entry.response,
        source="cache",
        cache={"tier": hit.tier, "similarity": round(hit.similarity, 4), "threshold": threshold},
        model_used=entry.model,
        routing=routing,
        citations=entry.extra.get("citations", []),
        usage=_usage_dict(row),
        request_id=ctx.request_id,
        headers=_headers(ctx, f"HIT-{hit.tier.upper()}", similarity=hit.similarity, qhash=qhash),
    )


async def _context(
    *, tenant: Tenant, query: str, user_id: str | None, request_id: str, ledger_id: str | None,
    control: CacheControl, history: tuple[dict, ...], route: tuple[str, tuple[str, ...]] | None,
    caller: Caller = NOBODY,
) -> QueryContext:  # fmt: skip
    """The tenant's and key's rate limits (AdmissionRefused 429), then what the query is known by
    before its embedding. The caller releases ``admission`` (its parallel slot) when it ends."""
    admission = await aadmit(tenant=tenant, api_key=caller.api_key, request_id=request_id, guard=get_cache().guard)
    settings, embedder = await asettings_for(tenant), get_embedder()
    use_cache = settings.cache_enabled and (control.read or control.write)
    context = context_digest(history=history, model=route[0] if route else None, namespace=control.namespace)
    return QueryContext(
        tenant=tenant,
        query=query,
        request_id=request_id,
        ledger_id=ledger_id or request_id,
        settings=settings,
        scope=_scope(tenant, settings, embedder.id, user_id, context),
        embedder=embedder,
        use_cache=use_cache,
        read_cache=use_cache and control.read,
        control=control,
        history=history,
        route=route,
        user_id=user_id,
        caller=caller,
        admission=admission,
    )


async def answer_query(
    *, tenant: Tenant, query: str, user_id: str | None, request_id: str, cache_mode: str = "auto",
    ledger_id: str | None = None, control: CacheControl | None = None, history: tuple[dict, ...] = (),
    route: tuple[str, tuple[str, ...]] | None = None, caller: Caller = NOBODY,
) -> QueryResult:  # fmt: skip
    """Raises AdmissionRefused (429/402) and UpstreamFailed (502 after a zero-cost usage row).

    ``request_id`` is the server's id of this request; ``ledger_id`` the id its answer is
    billed under (the same, unless an idempotent retry must be billed once: ai/api/idempotency.py).
    ``control`` (else ``cache_mode``'s alias) says how the cache is used; ``history`` is a
    conversation's messages before ``query`` and ``route`` a model the caller named with its
    fallbacks: both are part of the cache scope (``context_digest``).
    """
    started = time.perf_counter()
    async with door.entered(), Permit() as permit:
        ctx = await _context(
            tenant=tenant, query=query, user_id=user_id, request_id=request_id, ledger_id=ledger_id,
            control=control or CacheControl.from_mode(cache_mode), history=history, route=route, caller=caller,
        )  # fmt: skip
        try:
            found = await _lookup(ctx, cache := get_cache(), permit)
            result = found if isinstance(found, QueryResult) else await _complete(ctx, cache, found, permit)
        except UpstreamFailed:
            metrics.query_count(tenant=tenant, source="error", seconds=time.perf_counter() - started)
            raise
        finally:
            await ctx.admission.arelease()
    return _answered(ctx, result, started)


def _answered(ctx: QueryContext, result: QueryResult, started: float) -> QueryResult:
    seconds = time.perf_counter() - started
    result.latency_ms = round(seconds * 1000, 2)
    tier = result.cache.get("tier")
    source = f"cache_{tier}" if tier else "llm"
    metrics.query_count(tenant=ctx.tenant, source=source, seconds=seconds)
    # No query text at INFO: it may carry personal data (DEBUG is for development).
    logger.info(
        "query answered: source=%s model=%s latency_ms=%.1f",
        source,
        result.model_used,
        result.latency_ms,
        extra={"source": source, "model": result.model_used, "latency_ms": result.latency_ms},
    )
    return result


def _scope(
    tenant: Tenant, settings: TenantAISettings, embedder_id: str, user_id: str | None, context: str = ""
) -> CacheScope:
    per_user = settings.cache_scope == TenantAISettings.CacheScope.USER
    return CacheScope(tenant.pk, embedder_id, user_id if per_user else None, context)


@dataclass
class Miss:
    """A query no cache entry answers: routed, its model chain chosen, leading its single flight."""

    routed: Routed
    chain: list[str]
    flight: Flight | None


async def _lookup(ctx: QueryContext, cache: SemanticCache, permit: Permit) -> QueryResult | Miss:
    """The cache's answer (a hit's result), or the miss to generate; its flight (if any) is held.
    Past the exact tier it leaves the door and waits for ``permit`` (a follower gives it back
    while it waits)."""
    generation = None
    if ctx.use_cache:
        exact = await cache.alookup_exact(ctx.scope, ctx.query)
        generation = exact.generation
        if ctx.read_cache and exact.hit and ctx.fresh(exact.hit.entry.created_at, time.time()):
            return await _hit(ctx, exact.hit)

    await permit.acquire()
    routed = await _route(ctx, generation)
    if routed.threshold is not None and ctx.read_cache and routed.whole:
        found = await cache.alookup_semantic(
            ctx.scope, routed.generation, ctx.query, routed.vector, routed.threshold,
            intent=str(routed.decision.intent), documents=routed.decision.documents,
        )  # fmt: skip
        if found.hit and ctx.fresh(found.hit.entry.created_at, time.time()):
            in_background(cache.aalias(ctx.scope, found.hit, ctx.query))  # its repeats: exact hits
            return await _hit(ctx, found.hit, routed)

    decision = routed.decision
    async with _router_billed_if_refused(ctx, routed):
        chain = ctx.caller.chain(
            model_chain(decision.model, decision.fallbacks, local_fallback=ctx.settings.local_fallback)
        )
    # A request that will not store its answer leads no flight: its followers would wait for nothing.
    leads = routed.threshold is not None and ctx.control.write
    flight = await cache.atake_off(ctx.scope, ctx.query) if leads else None
    if flight is not None and not flight.leader and ctx.read_cache:
        permit.release()  # the leader prepares; a follower waits for its answer without a permit
        try:
            waited = await cache.await_leader(flight, ctx.scope, ctx.query, max_wait=chain_deadline(chain))
        except BaseException:
            await flight.arelease()
            raise
        if waited.hit and ctx.fresh(waited.hit.entry.created_at, time.time()):
            await flight.arelease()
            return await _hit(ctx, waited.hit, routed)
    return Miss(routed, chain, flight)


async def _complete(ctx: QueryContext, cache: SemanticCache, miss: Miss, permit: Permit) -> QueryResult:
    """Generate a miss's whole answer, cache it, bill it. Its spend reservation ends only once
    its ledger row (its cost, in the month's counter) is written: ended before, the budget it
    held would be free for another request while this one's cost is counted nowhere."""
    routed, admission = miss.routed, None
    try:
        try:
            if routed.decision.intent == Intent.ERROR:
                answer = Generation(ERROR_ANSWER, "local-extractive", 0, 0, [])
            else:
                await permit.acquire()  # a follower whose leader left no answer: its turn again
                async with _router_billed_if_refused(ctx, routed):
                    admission = await areserve(tenant=ctx.tenant, api_key=ctx.caller.api_key)
                answer = await _generate(ctx, routed, miss.chain, permit, admission)
            stored = await _store(ctx, cache, routed, answer)
        finally:
            if miss.flight is not None:
                await miss.flight.arelease()
        tokens = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
        row = await _record(
            ctx, routed.spent.usage(ctx, source="llm", model=answer.model, **tokens, **_stored_as(ctx, stored))
        )
    finally:
        if admission is not None:
            await arelease(admission)
    return _missed(ctx, routed, answer, stored, row)


def _stored_as(ctx: QueryContext, stored: str) -> dict:
    """The ledger's cache key of an answer the cache took (feedback on it evicts it)."""
    return {"cache_key": ctx.scope.entry_id(query_hash(ctx.query))} if stored == "stored" else {}


def _missed(ctx: QueryContext, routed: Routed, answer: Generation, stored: str, row: dict) -> QueryResult:
    headers = _headers(
        ctx,
        "BYPASS" if routed.threshold is None else "MISS",
        qhash=query_hash(ctx.query) if stored == "stored" else None,
    )
    headers["X-Router-Confidence"] = f"{routed.decision.confidence:.4f}"
    return QueryResult(
        response=answer.text,
        source="llm",
        cache={"tier": None, "similarity": None, "threshold": routed.threshold, "stored": stored},
        model_used=answer.model,
        routing=routed.routing,
        citations=_citations(answer),
        usage=_usage_dict(row),
        request_id=ctx.request_id,
        headers=headers,
        finish_reason=answer.finish_reason,
    )


async def _route(ctx: QueryContext, generation: int | None) -> Routed:
    """Embed once (CPU pool) and route with that vector; the threshold follows the router's
    confidence. Routing may read example sets and call the LLM router: the DB pool."""
    embedded, whole = await in_cpu(_embedded_whole, ctx.embedder, ctx.query, ctx.tenant.pk)
    vector = embedded.vectors[0]
    decision = await in_db(
        route_query,
        tenant=ctx.tenant, query=ctx.query, vector=vector, embedder_id=ctx.embedder.id, settings=ctx.settings,
    )  # fmt: skip
    if ctx.route is not None:  # the caller named a model: its route, whatever the router chose
        decision = replace(decision, model=ctx.route[0], fallbacks=ctx.route[1])
    router_model, router_in, router_out = decision.router_usage or ("", 0, 0)
    cached = ctx.use_cache and generation is not None
    return Routed(
        vector=vector,
        decision=decision,
        spent=Spent(ctx.embedder.id, embedded.input_tokens, router_model, router_in, router_out),
        generation=generation,
        threshold=ctx.settings.semantic_threshold(decision) if cached else None,
        whole=whole,
    )


def _embedded_whole(embedder: Embedder, query: str, tenant_id: int) -> tuple[Embeddings, bool]:
    """The query's embedding, and whether the embedder saw it whole (one trip to the CPU pool). A
    query longer than the embedder's window has the vector of its beginning only: no semantic
    match may rest on it, and it is cached for exact repeats only."""
    return embedder.embed([query], tenant_id=tenant_id), embedder.sees_whole(query)


def _citations(answer: Generation) -> list[dict]:
    return [{"document": c.title, "document_id": c.document_id, "chunk": c.position} for c in answer.used]


async def _generate(
    ctx: QueryContext, routed: Routed, chain: list[str], permit: Permit, admission: Admission
) -> Generation:
    """A miss: retrieve, generate within what ``admission`` reserved; ``permit`` is given back
    before the upstream call. A failure of every model is billed (what the query's embedding
    cost) before it is raised."""
    try:
        chunks = await in_db(retrieve, tenant=ctx.tenant, vector=routed.vector, k=RETRIEVE_K)
        budget = admission.max_cost - await in_db(routed.spent.cost)
        return await generate(
            query=ctx.query, chunks=chunks, chain=chain, budget=budget, history=ctx.history, on_call=permit.release
        )
    except UpstreamFailed:
        await _record(ctx, routed.spent.usage(ctx, source="error", model=routed.decision.model))
        raise


async def _store(ctx: QueryContext, cache: SemanticCache, routed: Routed, answer: Generation) -> str:
    """Cache the answer (for exact repeats only when the embedder did not see the query whole)."""
    if routed.threshold is None or routed.generation is None:
        return "bypass"
    if not ctx.control.write:
        return "not_cached:no-store"
    if routed.decision.intent == Intent.ERROR:
        return "not_cached:out_of_scope"
    if answer.finish_reason != "stop":
        return "not_cached:truncated"  # cut at this request's max_tokens: not an answer for others
    sources = [chunk.text for chunk in answer.used]
    kinds = personal_data_outside(ctx.query, []) + personal_data_outside(answer.text, sources)
    if kinds:
        metrics.CACHE_SKIPS.labels(reason="personal_data").inc()
        return "not_cached:personal_data"
    entry = CacheEntry(
        query=ctx.query,
        response=answer.text,
        model=answer.model,
        intent=str(routed.decision.intent),
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        threshold=routed.threshold,
        extra={"citations": _citations(answer), "about": list(routed.decision.documents)},
    )
    stored = await cache.astore(
        ctx.scope,
        routed.generation,
        entry,
        ttl=ctx.ttl(),
        vector=routed.vector if routed.whole else None,
        sources=sources,
    )
    return "stored" if stored.stored else f"not_cached:{stored.reason}"
