"""The query flow, in the reference article's order with the exact tier first and
one shared embedding:

authenticate -> admission -> exact tier -> embed once -> route -> threshold from
confidence -> semantic tier -> (miss) single flight -> retrieve -> generate with the
routed model and its fallbacks, capped to the request's reservation -> cache the
answer -> usage row -> metrics.

Network calls (Redis, embeddings, LLM) happen outside database transactions.
"""

import logging
import time
from decimal import Decimal

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
from ai.tenant_settings.selectors import settings_for
from billing.admission import admit, release
from billing.services import Usage, usage_record
from saascore import metrics
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


def _record(ctx: QueryContext, usage: Usage) -> dict:
    row = usage_record(tenant=ctx.tenant, usage=usage)
    metrics.usage_count(tenant=ctx.tenant, row=row)
    return row


def _hit(ctx: QueryContext, hit: CacheHit, routed: Routed | None = None) -> tuple[QueryResult, Decimal]:
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
    row = _record(ctx, usage)
    result = QueryResult(
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
    return result, row["cost"]


def answer_query(
    *, tenant: Tenant, query: str, user_id: str | None, cache_mode: str, request_id: str, ledger_id: str | None = None
) -> QueryResult:
    """Raises AdmissionRefused (429/402) and UpstreamFailed (502 after a zero-cost usage row).

    ``request_id`` is the server's id of this request; ``ledger_id`` the id its answer is
    billed under (the same, unless an idempotent retry must be billed once: ai/api/idempotency.py).
    """
    started = time.perf_counter()
    cache = get_cache()
    admission = admit(tenant=tenant, guard=cache.guard)
    try:
        settings, embedder = settings_for(tenant), get_embedder()
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
            max_cost=admission.max_cost,
        )
        result, _ = _answer(ctx, cache)
    except UpstreamFailed:
        metrics.query_count(tenant=tenant, source="error", seconds=time.perf_counter() - started)
        raise
    finally:
        release(admission)
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


def _answer(ctx: QueryContext, cache: SemanticCache) -> tuple[QueryResult, Decimal]:
    generation = None
    if ctx.use_cache:
        exact = cache.lookup_exact(ctx.scope, ctx.query)
        generation = exact.generation
        if ctx.read_cache and exact.hit:
            return _hit(ctx, exact.hit)

    routed = _route(ctx, generation)
    if routed.threshold is not None and ctx.read_cache and routed.whole:
        found = cache.lookup_semantic(
            ctx.scope, routed.generation, ctx.query, routed.vector, routed.threshold, intent=str(routed.decision.intent)
        )
        if found.hit:
            return _hit(ctx, found.hit, routed)

    decision = routed.decision
    chain = model_chain(decision.model, decision.fallbacks, local_fallback=ctx.settings.local_fallback)
    flight = None if routed.threshold is None else cache.take_off(ctx.scope, ctx.query)
    try:
        if flight is not None and not flight.leader and ctx.read_cache:
            waited = cache.wait_for_leader(flight, ctx.scope, ctx.query, max_wait=chain_deadline(chain))
            if waited.hit:
                return _hit(ctx, waited.hit, routed)
        answer = _generate(ctx, routed, chain)
        stored = _store(ctx, cache, routed, answer)
    finally:
        if flight is not None:
            flight.release()
    tokens = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
    row = _record(ctx, routed.spent.usage(ctx, source="llm", model=answer.model, **tokens))
    result = QueryResult(
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
    return result, row["cost"]


def _route(ctx: QueryContext, generation: int | None) -> Routed:
    """Embed once and route with that vector; the threshold follows the router's confidence."""
    embedded = ctx.embedder.embed([ctx.query])
    vector = embedded.vectors[0]
    decision = route_query(
        tenant=ctx.tenant, query=ctx.query, vector=vector, embedder_id=ctx.embedder.id, settings=ctx.settings
    )
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
        whole=ctx.embedder.sees_whole(ctx.query),
    )


def _citations(answer: Generation) -> list[dict]:
    return [{"document": c.title, "document_id": c.document_id, "chunk": c.position} for c in answer.used]


def _generate(ctx: QueryContext, routed: Routed, chain: list[str]) -> Generation:
    if routed.decision.intent == Intent.ERROR:
        return Generation(ERROR_ANSWER, "local-extractive", 0, 0, [])
    chunks = retrieve(tenant=ctx.tenant, vector=routed.vector, k=RETRIEVE_K)
    try:
        return generate(query=ctx.query, chunks=chunks, chain=chain, budget=ctx.max_cost - routed.spent.cost())
    except UpstreamFailed:
        _record(ctx, routed.spent.usage(ctx, source="error", model=routed.decision.model))
        raise


def _store(ctx: QueryContext, cache: SemanticCache, routed: Routed, answer: Generation) -> str:
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
    stored = cache.store(
        ctx.scope,
        routed.generation,
        entry,
        ttl=ctx.settings.cache_ttl_seconds,
        vector=routed.vector if routed.whole else None,
        sources=sources,
    )
    return "stored" if stored.stored else f"not_cached:{stored.reason}"
