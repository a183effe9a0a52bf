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
"""

import logging
import time

from ai.cache import CacheHit, CacheScope, SemanticCache, get_cache
from ai.cache.entries import CacheEntry
from ai.cache.pii import personal_data_outside
from ai.context import NOTHING_SPENT, QueryContext, QueryResult, Routed, Spent
from ai.embeddings import get_embedder
from ai.llm.generate import Generation, UpstreamFailed, chain_deadline, generate, model_chain
from ai.rag.retrieval import retrieve
from ai.router.decisions import Intent
from ai.router.service import route_query
from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import asettings_for
from billing.admission import arate_check, arelease, areserve
from billing.group_commit import ledger
from billing.services import Usage
from saascore import metrics
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


async def _record(ctx: QueryContext, usage: Usage) -> dict:
    row = await ledger.arecord(tenant_id=ctx.tenant.pk, usage=usage)
    metrics.usage_count(tenant=ctx.tenant, row=row)
    return row


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
    )
    row = await _record(ctx, usage)
    return QueryResult(
        response=entry.response,
        source="cache",
        cache={"tier": hit.tier, "similarity": round(hit.similarity, 4), "threshold": threshold},
        model_used=entry.model,
        routing=routing,
        citations=entry.extra.get("citations", []),
        usage=_usage_dict(row),
        request_id=ctx.request_id,
        headers={"X-Cache": f"HIT-{hit.tier.upper()}"},
    )


async def answer_query(
    *, tenant: Tenant, query: str, user_id: str | None, cache_mode: str, request_id: str, ledger_id: str | None = None
) -> QueryResult:
    """Raises AdmissionRefused (429/402) and UpstreamFailed (502 after a zero-cost usage row).

    ``request_id`` is the server's id of this request; ``ledger_id`` the id its answer is
    billed under (the same, unless an idempotent retry must be billed once: ai/api/idempotency.py).
    """
    started = time.perf_counter()
    cache = get_cache()
    await arate_check(tenant=tenant, guard=cache.guard)
    settings, embedder = await asettings_for(tenant), get_embedder()
    use_cache = settings.cache_enabled and cache_mode != "bypass"
    ctx = QueryContext(
        tenant=tenant,
        query=query,
        request_id=request_id,
        ledger_id=ledger_id or request_id,
        settings=settings,
        scope=_scope(tenant, settings, embedder.id, user_id),
        embedder=embedder,
        use_cache=use_cache,
        read_cache=use_cache and cache_mode != "refresh",
    )
    try:
        result = await _answer(ctx, cache)
    except UpstreamFailed:
        metrics.query_count(tenant=tenant, source="error", seconds=time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    result.latency_ms = round(seconds * 1000, 2)
    tier = result.cache.get("tier")
    source = f"cache_{tier}" if tier else "llm"
    metrics.query_count(tenant=tenant, source=source, seconds=seconds)
    # No query text at INFO: it may carry personal data (DEBUG is for development).
    logger.info(
        "query answered: source=%s model=%s latency_ms=%.1f",
        source,
        result.model_used,
        result.latency_ms,
        extra={"source": source, "model": result.model_used, "latency_ms": result.latency_ms},
    )
    return result


def _scope(tenant: Tenant, settings: TenantAISettings, embedder_id: str, user_id: str | None) -> CacheScope:
    per_user = settings.cache_scope == TenantAISettings.CacheScope.USER
    return CacheScope(tenant.pk, embedder_id, user_id if per_user else None)


async def _answer(ctx: QueryContext, cache: SemanticCache) -> QueryResult:
    generation = None
    if ctx.use_cache:
        exact = await cache.alookup_exact(ctx.scope, ctx.query)
        generation = exact.generation
        if ctx.read_cache and exact.hit:
            return await _hit(ctx, exact.hit)

    routed = await _route(ctx, generation)
    if routed.threshold is not None and ctx.read_cache and routed.whole:
        found = await cache.alookup_semantic(
            ctx.scope, routed.generation, ctx.query, routed.vector, routed.threshold, intent=str(routed.decision.intent)
        )
        if found.hit:
            in_background(cache.aalias(ctx.scope, found.hit, ctx.query))  # its repeats: exact hits
            return await _hit(ctx, found.hit, routed)

    decision = routed.decision
    chain = model_chain(decision.model, decision.fallbacks, local_fallback=ctx.settings.local_fallback)
    flight = None if routed.threshold is None else await cache.atake_off(ctx.scope, ctx.query)
    try:
        if flight is not None and not flight.leader and ctx.read_cache:
            waited = await cache.await_leader(flight, ctx.scope, ctx.query, max_wait=chain_deadline(chain))
            if waited.hit:
                return await _hit(ctx, waited.hit, routed)
        answer = await _generate(ctx, routed, chain)
        stored = await _store(ctx, cache, routed, answer)
    finally:
        if flight is not None:
            await flight.arelease()
    tokens = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
    row = await _record(ctx, routed.spent.usage(ctx, source="llm", model=answer.model, **tokens))
    return QueryResult(
        response=answer.text,
        source="llm",
        cache={"tier": None, "similarity": None, "threshold": routed.threshold, "stored": stored},
        model_used=answer.model,
        routing=routed.routing,
        citations=_citations(answer),
        usage=_usage_dict(row),
        request_id=ctx.request_id,
        headers={
            "X-Cache": "BYPASS" if routed.threshold is None else "MISS",
            "X-Router-Confidence": f"{decision.confidence:.4f}",
        },
    )


async def _route(ctx: QueryContext, generation: int | None) -> Routed:
    """Embed once (CPU pool) and route with that vector; the threshold follows the router's
    confidence. Routing may read example sets and call the LLM router: the DB pool."""
    embedded = await in_cpu(ctx.embedder.embed, [ctx.query])
    vector = embedded.vectors[0]
    decision = await in_db(
        route_query,
        tenant=ctx.tenant, query=ctx.query, vector=vector, embedder_id=ctx.embedder.id, settings=ctx.settings,
    )  # fmt: skip
    router_model, router_in, router_out = decision.router_usage or ("", 0, 0)
    cached = ctx.use_cache and generation is not None
    return Routed(
        vector=vector,
        decision=decision,
        spent=Spent(ctx.embedder.id, embedded.input_tokens, router_model, router_in, router_out),
        generation=generation,
        threshold=ctx.settings.semantic_threshold(decision) if cached else None,
        # A query longer than the embedder's window has the vector of its beginning only:
        # no semantic match may rest on it, and it is cached for exact repeats only.
        whole=await in_cpu(ctx.embedder.sees_whole, ctx.query),
    )


def _citations(answer: Generation) -> list[dict]:
    return [{"document": c.title, "document_id": c.document_id, "chunk": c.position} for c in answer.used]


async def _generate(ctx: QueryContext, routed: Routed, chain: list[str]) -> Generation:
    """A miss: reserve what it may spend, retrieve, generate within the reservation."""
    if routed.decision.intent == Intent.ERROR:
        return Generation(ERROR_ANSWER, "local-extractive", 0, 0, [])
    admission = await areserve(tenant=ctx.tenant)
    try:
        chunks = await in_db(retrieve, tenant=ctx.tenant, vector=routed.vector, k=RETRIEVE_K)
        budget = admission.max_cost - await in_db(routed.spent.cost)
        return await generate(query=ctx.query, chunks=chunks, chain=chain, budget=budget)
    except UpstreamFailed:
        await _record(ctx, routed.spent.usage(ctx, source="error", model=routed.decision.model))
        raise
    finally:
        await arelease(admission)


async def _store(ctx: QueryContext, cache: SemanticCache, routed: Routed, answer: Generation) -> str:
    """Cache the answer (for exact repeats only when the embedder did not see the query whole)."""
    if routed.threshold is None or routed.generation is None:
        return "bypass"
    if routed.decision.intent == Intent.ERROR:
        return "not_cached:out_of_scope"
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
        extra={"citations": _citations(answer)},
    )
    stored = await cache.astore(
        ctx.scope,
        routed.generation,
        entry,
        ttl=ctx.settings.cache_ttl_seconds,
        vector=routed.vector if routed.whole else None,
        sources=sources,
    )
    return "stored" if stored.stored else f"not_cached:{stored.reason}"
