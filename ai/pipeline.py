"""The query flow, in the reference article's order with the exact tier first and
one shared embedding:

authenticate -> admission -> exact tier -> embed once -> route -> threshold from
confidence -> semantic tier -> (miss) single flight -> retrieve -> generate with the
routed model and its fallbacks -> cache the answer -> usage row -> metrics.

Network calls (Redis, embeddings, LLM) happen outside database transactions.
"""

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from ai import metrics
from ai.cache import CacheScope, get_cache
from ai.cache.entries import CacheEntry
from ai.cache.pii import contains_personal_data
from ai.conf import ai_settings
from ai.embeddings import get_embedder
from ai.llm.generate import Generation, UpstreamFailed, generate, model_chain
from ai.rag.retrieval import retrieve
from ai.router.decisions import Intent, RoutingDecision
from ai.router.service import route_query
from ai.tenant_settings import TenantAISettings, settings_for
from billing.services import Usage, admit, settle, usage_record
from tenants.models import Tenant

logger = logging.getLogger("saascore.query")

RETRIEVE_K = 5
ERROR_ANSWER = "I can only help with questions about this service and its documents."


@dataclass
class QueryResult:
    response: str
    source: str  # "cache" | "llm"
    cache: dict
    model_used: str
    routing: dict | None
    citations: list[dict]
    usage: dict
    request_id: str
    latency_ms: float = 0.0
    headers: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "response": self.response,
            "source": self.source,
            "cache": self.cache,
            "model_used": self.model_used,
            "routing": self.routing,
            "citations": self.citations,
            "usage": self.usage,
            "latency_ms": self.latency_ms,
            "request_id": self.request_id,
        }


def _usage_dict(row: dict) -> dict:
    return {
        "input_tokens": row["input_tokens"] + row["router_input_tokens"],
        "output_tokens": row["output_tokens"] + row["router_output_tokens"],
        "cost_usd": str(row["cost"]),
        "saved_usd": str(row["saved"]),
    }


def _scope(tenant: Tenant, settings: TenantAISettings, embedder_id: str, user_id: str | None) -> CacheScope:
    per_user = settings.cache_scope == TenantAISettings.CacheScope.USER
    return CacheScope(tenant.pk, embedder_id, user_id if per_user else None)


def _hit(
    *,
    tenant: Tenant,
    request_id: str,
    entry: CacheEntry,
    tier: str,
    similarity: float,
    threshold: float | None,
    routing: dict | None,
    usage_extra: dict,
) -> tuple[QueryResult, Decimal]:
    """A cache hit: its usage row (what it saved) and the response."""
    routed_model = routing["model"] if routing else entry.model
    row = usage_record(
        tenant=tenant,
        usage=Usage(
            request_id=request_id,
            source=f"cache_{tier}",
            model=routed_model,
            saved_input_tokens=entry.input_tokens,
            saved_output_tokens=entry.output_tokens,
            cached_question=entry.query[:500],
            **usage_extra,
        ),
    )
    metrics.usage_count(tenant=tenant, row=row)
    return (
        QueryResult(
            response=entry.response,
            source="cache",
            cache={"tier": tier, "similarity": round(similarity, 4), "threshold": threshold},
            model_used=entry.model,
            routing=routing,
            citations=entry.extra.get("citations", []),
            usage=_usage_dict(row),
            request_id=request_id,
            headers={"X-Cache": f"HIT-{tier.upper()}"},
        ),
        row["cost"],
    )


def answer_query(*, tenant: Tenant, query: str, user_id: str | None, cache_mode: str, request_id: str) -> QueryResult:
    """Raises AdmissionRefused (429/402) and UpstreamFailed (502 after a zero-cost usage row)."""
    started = time.perf_counter()
    admission = admit(tenant=tenant, client=get_cache().client)
    cost = Decimal(0)
    try:
        result, cost = _answer(tenant, query, user_id, cache_mode, request_id)
    except UpstreamFailed:
        metrics.query_count(tenant=tenant, source="error", seconds=time.perf_counter() - started)
        raise
    finally:
        settle(admission=admission, cost=cost)
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


def _answer(tenant: Tenant, query: str, user_id: str | None, cache_mode: str, request_id: str):
    settings = settings_for(tenant)
    cache = get_cache()
    embedder = get_embedder()
    scope = _scope(tenant, settings, embedder.id, user_id)
    use_cache = settings.cache_enabled and cache_mode != "bypass"
    read_cache = use_cache and cache_mode != "refresh"

    generation = None
    if use_cache:
        exact = cache.lookup_exact(scope, query)
        generation = exact.generation
        if read_cache and exact.hit:
            hit = exact.hit
            return _hit(
                tenant=tenant,
                request_id=request_id,
                entry=hit.entry,
                tier="exact",
                similarity=1.0,
                threshold=hit.threshold,
                routing=None,
                usage_extra={},
            )

    embedded = embedder.embed([query])
    vector = embedded.vectors[0]
    embedding_usage = {"embedding_model": embedder.id, "embedding_tokens": embedded.input_tokens}
    decision = route_query(tenant=tenant, query=query, vector=vector, embedder_id=embedder.id, settings=settings)
    routing = decision.as_dict()
    router_usage = {}
    if decision.router_usage:
        model, tokens_in, tokens_out = decision.router_usage
        router_usage = {"router_model": model, "router_input_tokens": tokens_in, "router_output_tokens": tokens_out}
    threshold = settings.semantic_threshold(decision) if use_cache and generation is not None else None
    bypass = threshold is None

    if not bypass and read_cache:
        found = cache.lookup_semantic(scope, generation, query, vector, threshold, intent=str(decision.intent))
        if found.hit:
            return _hit(
                tenant=tenant,
                request_id=request_id,
                entry=found.hit.entry,
                tier="semantic",
                similarity=found.hit.similarity,
                threshold=threshold,
                routing=routing,
                usage_extra={**embedding_usage, **router_usage},
            )

    flight = None if bypass else cache.take_off(scope, query, lock_ttl=ai_settings.LLM_TIMEOUT * 2)
    try:
        if flight is not None and not flight.leader and read_cache:
            waited = cache.wait_for_leader(flight, scope, query, timeout=ai_settings.LLM_TIMEOUT)
            if waited.hit:
                return _hit(
                    tenant=tenant,
                    request_id=request_id,
                    entry=waited.hit.entry,
                    tier="exact",
                    similarity=1.0,
                    threshold=threshold,
                    routing=routing,
                    usage_extra=embedding_usage,
                )
        answer = _generate(tenant, query, vector, decision, settings, request_id, {**embedding_usage, **router_usage})
        stored = _store(cache, scope, generation, query, vector, answer, decision, threshold, bypass, settings)
    finally:
        if flight is not None:
            flight.release()
    row = usage_record(
        tenant=tenant,
        usage=Usage(
            request_id=request_id,
            source="llm",
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            **embedding_usage,
            **router_usage,
        ),
    )
    metrics.usage_count(tenant=tenant, row=row)
    cache_info = {"tier": None, "similarity": None, "threshold": threshold, "stored": stored}
    result = QueryResult(
        response=answer.text,
        source="llm",
        cache=cache_info,
        model_used=answer.model,
        routing=routing,
        citations=_citations(answer),
        usage=_usage_dict(row),
        request_id=request_id,
        headers={"X-Cache": "BYPASS" if bypass else "MISS", "X-Router-Confidence": f"{decision.confidence:.4f}"},
    )
    return result, row["cost"]


def _citations(answer: Generation) -> list[dict]:
    return [{"document": c.title, "document_id": c.document_id, "chunk": c.position} for c in answer.used]


def _generate(
    tenant: Tenant, query: str, vector, decision: RoutingDecision, settings, request_id: str, usage_extra: dict
) -> Generation:
    if decision.intent == Intent.ERROR:
        return Generation(ERROR_ANSWER, "local-extractive", 0, 0, [])
    chunks = retrieve(tenant=tenant, vector=vector, k=RETRIEVE_K)
    chain = model_chain(decision.model, decision.fallbacks, local_fallback=settings.local_fallback)
    try:
        return generate(query=query, chunks=chunks, chain=chain)
    except UpstreamFailed:
        row = usage_record(
            tenant=tenant, usage=Usage(request_id=request_id, source="error", model=decision.model, **usage_extra)
        )
        metrics.usage_count(tenant=tenant, row=row)
        raise


def _store(cache, scope, generation, query, vector, answer: Generation, decision, threshold, bypass, settings) -> str:
    if bypass:
        return "bypass"
    if decision.intent == Intent.ERROR:
        return "not_cached:out_of_scope"
    if contains_personal_data(query, answer.text):
        return "not_cached:personal_data"
    entry = CacheEntry(
        query=query,
        response=answer.text,
        model=answer.model,
        intent=str(decision.intent),
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        threshold=threshold,
        extra={"citations": _citations(answer)},
    )
    stored = cache.store(scope, generation, entry, ttl=settings.cache_ttl_seconds, vector=vector)
    return "stored" if stored.stored else f"not_cached:{stored.reason}"
