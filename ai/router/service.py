"""Route a query: intent, complexity, model, cache strategy and confidence.

Modes per tenant: ``local`` (the nearest examples vote), ``llm`` (structured
output through the configured provider), ``cascade`` (local, and the LLM only
when local confidence is under the tenant's threshold). The query embedding is
the one the cache already computed: routing never embeds again.

A tenant's documents define what it may be asked. The questions bootstrapped from
them vote with the examples (``ai.router.local``); a query still out of scope is
asked of the documents' passages too (one nearest-chunk probe, only for such
queries, so hits never pay it): a passage at least ``local.PASSAGE_FLOOR`` similar
puts it back in scope as retrieval.
"""

import logging
from dataclasses import replace

import numpy as np

from ai.cache.pii import contains_personal_data
from ai.llm.providers import provider_client
from ai.rag.retrieval import retrieve
from ai.router.decisions import CacheStrategy, Complexity, Intent, RoutingDecision
from ai.router.examples import example_set_for
from ai.router.llm import RouterError, llm_route
from ai.router.local import Scope, document_confidence, document_distance, route_locally
from ai.router.table import route_for
from ai.tenant_settings.models import TenantAISettings
from billing.admission import monthly_limit_spent
from catalog.selectors import price_at
from saascore import metrics
from saascore.conf import ai_settings
from tenants.models import Tenant

logger = logging.getLogger("saascore.router")

FAILSAFE_CONFIDENCE = 0.5


def _local(tenant: Tenant, vector: np.ndarray, embedder_id: str) -> RoutingDecision:
    examples = example_set_for(tenant, embedder_id)
    if not len(examples):
        return _failsafe(tenant, "no_examples")
    vote, confidence = route_locally(examples, vector)
    neighbours = examples.neighbours(vote)
    if vote.scope == Scope.NONE:
        distance = document_distance(vote.documents, _nearest_passage(tenant, vector))
        if distance is not None:
            confidence = document_confidence(distance)
            if distance >= 0:  # a passage is about it: in scope after all
                return _routed(tenant, Intent.RETRIEVAL, Complexity.MEDIUM, CacheStrategy.STANDARD, confidence,
                               reason="documents", neighbours=neighbours)  # fmt: skip
    return _routed(tenant, vote.intent, vote.complexity, vote.cache_strategy, confidence, neighbours=neighbours,
                   documents=vote.about)  # fmt: skip


def _routed(
    tenant: Tenant, intent: Intent, complexity: Complexity, strategy: CacheStrategy, confidence: float,
    *, source: str = "local", reason: str = "", neighbours: tuple = (), router_usage: tuple | None = None,
    documents: tuple[int, ...] = (),
) -> RoutingDecision:  # fmt: skip
    """The decision, with the model and fallbacks of the tenant's route for (intent, complexity)."""
    model, fallbacks = route_for(tenant, intent, complexity)
    return RoutingDecision(
        intent=intent, complexity=complexity, model=model, cache_strategy=strategy, confidence=confidence,
        fallbacks=fallbacks, source=source, reason=reason, neighbours=neighbours, router_usage=router_usage,
        documents=documents,
    )  # fmt: skip


def _nearest_passage(tenant: Tenant, vector: np.ndarray) -> float | None:
    """The similarity of the tenant's nearest passage (None: it has no documents)."""
    nearest = retrieve(tenant=tenant, vector=vector, k=1)
    return nearest[0].score if nearest else None


def _failsafe(tenant: Tenant, reason: str) -> RoutingDecision:
    """Retrieval, medium, the rule's model, standard cache, confidence 0.5."""
    return _routed(tenant, Intent.RETRIEVAL, Complexity.MEDIUM, CacheStrategy.STANDARD, FAILSAFE_CONFIDENCE,
                   source="failsafe", reason=reason)  # fmt: skip


def _llm(tenant: Tenant, query: str, settings: TenantAISettings, local: RoutingDecision) -> RoutingDecision:
    price = price_at(model=settings.router_llm_model)
    client = provider_client(price.provider) if price else None
    if client is None:
        return _count_failure(tenant, "no_provider", f"no credentials for {settings.router_llm_model}")
    try:
        verdict = llm_route(
            client,
            model=settings.router_llm_model,
            query=query,
            examples=local.neighbours,
            timeout=ai_settings.ROUTER_LLM_TIMEOUT,
        )
    except RouterError as exc:
        return _count_failure(tenant, exc.reason, str(exc))
    usage = (settings.router_llm_model, verdict.input_tokens, verdict.output_tokens)
    return _routed(
        tenant, verdict.intent, verdict.complexity, verdict.cache_strategy, verdict.confidence, source="llm",
        neighbours=local.neighbours, router_usage=usage, documents=local.documents,
    )  # fmt: skip


def _count_failure(tenant: Tenant, reason: str, detail: str) -> RoutingDecision:
    metrics.ROUTER_FAILURES.labels(reason=reason).inc()
    logger.warning("LLM router failed (%s), answering fail-safe: %s", reason, detail)
    return _failsafe(tenant, f"llm_router_{reason}")


def route_query(
    *,
    tenant: Tenant,
    query: str,
    vector: np.ndarray,
    embedder_id: str,
    settings: TenantAISettings,
    preview: bool = False,
) -> RoutingDecision:
    """The routing decision for a query. ``preview`` (the admin's "try a query") never calls
    the LLM router and records no metrics: it shows the local decision."""
    local = _local(tenant, vector, embedder_id)
    mode = settings.router_mode
    if preview:
        decision = local
    elif mode == TenantAISettings.RouterMode.LLM or (
        mode == TenantAISettings.RouterMode.CASCADE and local.confidence < settings.cascade_threshold
    ):
        if monthly_limit_spent(tenant):  # the LLM router would be paid for a request then refused
            decision = _count_failure(tenant, "spend_limit", "the tenant's monthly spend limit is spent")
        else:
            decision = _llm(tenant, query, settings, local)
    else:
        decision = local
    if contains_personal_data(query):
        decision = replace(decision, cache_strategy=CacheStrategy.BYPASS, reason=decision.reason or "personal_data")
    if preview:
        return decision
    metrics.ROUTER_CONFIDENCE.labels(source=decision.source).observe(decision.confidence)
    metrics.ROUTING_DECISIONS.labels(model=decision.model, intent=str(decision.intent)).inc()
    return decision
