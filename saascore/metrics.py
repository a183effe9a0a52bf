"""The product's Prometheus series (prefix ``saascore_``).

Labels are bounded: tiers, results, sources, models, intents, reasons — never
query text or user ids. Tenants appear only on the query and money series, and
only as the slugs an operator allow-lists (``AI["METRICS_TENANT_ALLOWLIST"]``);
every other tenant is ``other``.

Under gunicorn the series live in ``PROMETHEUS_MULTIPROC_DIR`` (one file per
worker, merged by ``/metrics``): gauges say how to merge the workers' values.
"""

from prometheus_client import Counter, Gauge, Histogram

from saascore.conf import ai_settings

OTHER_TENANT = "other"

CACHE_REQUESTS = Counter("saascore_cache_requests_total", "Cache lookups by tier and result.", ["tier", "result"])
CACHE_LOOKUP_SECONDS = Histogram(
    "saascore_cache_lookup_seconds",
    "Time of one cache lookup (Redis round trips and the hit judgement, not the embedding).",
    ["tier"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5),
)
# Every tier and result exists from the start (at 0), so a ratio over them is 0, not absent, before the first hit.
for _tier in ("exact", "semantic"):
    for _result in ("hit", "miss", "error"):
        CACHE_REQUESTS.labels(tier=_tier, result=_result)
CACHE_ERRORS = Counter("saascore_cache_errors_total", "Redis errors met by the cache (answered as misses).", ["op"])
CACHE_SKIPS = Counter("saascore_cache_skips_total", "Answers not cached, by reason.", ["reason"])
# One breaker per worker: the merged value is 1 while any live worker's breaker is open.
CACHE_BREAKER_STATE = Gauge(
    "saascore_cache_circuit_breaker_open",
    "1 while the cache's Redis circuit breaker is open or half-open (in any live worker).",
    multiprocess_mode="livemax",
)
# Invalidations (ai/cache/invalidation.py): applied after their commit, deferred (Redis did
# not take the bump; a sweep applies it), or applied by a sweep.
CACHE_INVALIDATIONS = Counter(
    "saascore_cache_invalidations_total",
    "Cache invalidations by outcome: applied (after the commit), deferred (Redis refused; left to a sweep), swept.",
    ["outcome"],
)
for _outcome in ("applied", "deferred", "swept"):
    CACHE_INVALIDATIONS.labels(outcome=_outcome)
CACHE_INVALIDATIONS_PENDING = Gauge(
    "saascore_cache_invalidations_pending",
    "Tenants a worker does not answer from the cache because an invalidation of theirs is pending "
    "(the most in any live worker).",
    multiprocess_mode="livemax",
)
CACHE_FEEDBACK = Counter(
    "saascore_cache_feedback_total",
    "Ratings of answers (POST /api/v1/ai/feedback) by rating (good|bad) and what they did: evicted (a bad "
    "rating dropped a cached entry), labelled (a pair recorded for the tenant's verifier), recorded (neither).",
    ["rating", "outcome"],
)
CACHE_SINGLE_FLIGHT = Counter("saascore_cache_single_flight_total", "Single-flight outcomes on a miss.", ["outcome"])

ROUTER_CONFIDENCE = Histogram(
    "saascore_router_confidence",
    "Router confidence per decision.",
    ["source"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0),
)
ROUTING_DECISIONS = Counter(
    "saascore_routing_decisions_total", "Routing decisions by model and intent.", ["model", "intent"]
)
ROUTER_FAILURES = Counter("saascore_router_failures_total", "LLM router failures answered fail-safe.", ["reason"])
UPSTREAM_ERRORS = Counter("saascore_upstream_errors_total", "Failed calls to a generation model.", ["model"])
LLM_TOKENS = Counter(
    "saascore_llm_tokens_total",
    "Tokens of generation and of the LLM router, by model and direction (input|output).",
    ["model", "direction"],
)
COST_USD = Counter(
    "saascore_cost_usd_total", "Cost of requests in USD, by ledger source and tenant.", ["source", "tenant"]
)
SAVED_USD = Counter(
    "saascore_saved_usd_total", "Cost saved by cache hits in USD, by tier and tenant.", ["tier", "tenant"]
)
QUERIES = Counter(
    "saascore_queries_total",
    "Queries answered (or failed upstream), by ledger source (llm|cache_exact|cache_semantic|error) and tenant.",
    ["source", "tenant"],
)
QUERY_SECONDS = Histogram(
    "saascore_query_seconds",
    "Query latency by ledger source (llm|cache_exact|cache_semantic|error).",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BUDGET_ALERTS = Counter("saascore_budget_soft_alerts_total", "Tenants passing their soft spend alert threshold.")
USAGE_SPOOL = Counter(
    "saascore_usage_spool_rows_total",
    "Ledger rows through the local spool (billing/spool.py), by event: spooled (PostgreSQL refused the row), "
    "written, duplicate (already in the ledger), set_aside (dead-letter file), lost (the spool refused it too).",
    ["event"],
)
for _event in ("spooled", "written", "duplicate", "set_aside", "lost"):
    USAGE_SPOOL.labels(event=_event)


def tenant_label(tenant) -> str:
    """The tenant's slug if the operator allow-listed it (by slug or id), else ``other``."""
    allowed = ai_settings.METRICS_TENANT_ALLOWLIST
    if not allowed or tenant is None:
        return OTHER_TENANT
    if tenant.slug in allowed or str(tenant.pk) in {str(item) for item in allowed}:
        return tenant.slug
    return OTHER_TENANT


def usage_count(*, tenant, row: dict) -> None:
    """The tokens, cost and savings of one ledger row (``billing.services.usage_record``'s answer)."""
    label = tenant_label(tenant)
    source = row["source"]
    if source == "llm":
        LLM_TOKENS.labels(model=row["model"], direction="input").inc(row["input_tokens"])
        LLM_TOKENS.labels(model=row["model"], direction="output").inc(row["output_tokens"])
    if row.get("router_model"):
        LLM_TOKENS.labels(model=row["router_model"], direction="input").inc(row["router_input_tokens"])
        LLM_TOKENS.labels(model=row["router_model"], direction="output").inc(row["router_output_tokens"])
    COST_USD.labels(source=source, tenant=label).inc(float(row["cost"]))
    if source.startswith("cache_"):
        SAVED_USD.labels(tier=source.removeprefix("cache_"), tenant=label).inc(float(row["saved"]))


def query_count(*, tenant, source: str, seconds: float) -> None:
    QUERIES.labels(source=source, tenant=tenant_label(tenant)).inc()
    QUERY_SECONDS.labels(source=source).observe(seconds)
