"""Route a query: intent, complexity, model, cache strategy and confidence.

Modes per tenant: ``local`` (the nearest examples vote), ``llm`` (structured
output through the configured provider), ``cascade`` (local, and the LLM only
when local confidence is under the tenant's threshold). The query embedding is
the one the cache already computed: routing never embeds again.
"""

import logging
from dataclasses import replace

import numpy as np

from ai.cache.pii import contains_personal_data
from ai.llm.providers import provider_client
from ai.router.decisions import CacheStrategy, Complexity, Intent, RoutingDecision
from ai.router.examples import example_set_for
from ai.router.llm import RouterError, llm_route
from ai.router.local import route_locally
from ai.router.table import route_for
from ai.tenant_settings.models import TenantAISettings
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
    model, fallbacks = route_for(tenant, vote.intent, vote.complexity)
    return RoutingDecision(
        intent=vote.intent,
        complexity=vote.complexity,
        model=model,
        cache_strategy=vote.cache_strategy,
        confidence=confidence,
        fallbacks=fallbacks,
        source="local",
        neighbours=examples.neighbours(vote),
    )


def _failsafe(tenant: Tenant, reason: str) -> RoutingDecision:
    """Retrieval, medium, the rule's model, standard cache, confidence 0.5."""
    model, fallbacks = route_for(tenant, Intent.RETRIEVAL, Complexity.MEDIUM)
    return RoutingDecision(
        intent=Intent.RETRIEVAL,
        complexity=Complexity.MEDIUM,
        model=model,
        cache_strategy=CacheStrategy.STANDARD,
        confidence=FAILSAFE_CONFIDENCE,
        fallbacks=fallbacks,
        source="failsafe",
        reason=reason,
    )


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
    model, fallbacks = route_for(tenant, verdict.intent, verdict.complexity)
    return RoutingDecision(
        intent=verdict.intent,
        complexity=verdict.complexity,
        model=model,
        cache_strategy=verdict.cache_strategy,
        confidence=verdict.confidence,
        fallbacks=fallbacks,
        source="llm",
        neighbours=local.neighbours,
        router_usage=(settings.router_llm_model, verdict.input_tokens, verdict.output_tokens),
    )


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
