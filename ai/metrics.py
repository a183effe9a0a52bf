"""The product's Prometheus series (prefix ``saascore_``).

Labels are bounded: tiers, results, backends, reasons — never query text, user
ids or tenant ids.
"""

from prometheus_client import Counter, Gauge, Histogram

CACHE_REQUESTS = Counter("saascore_cache_requests_total", "Cache lookups by tier and result.", ["tier", "result"])
CACHE_LOOKUP_SECONDS = Histogram(
    "saascore_cache_lookup_seconds",
    "Time of one cache lookup (Redis round trips and the hit judgement, not the embedding).",
    ["tier"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5),
)
CACHE_ERRORS = Counter("saascore_cache_errors_total", "Redis errors met by the cache (answered as misses).", ["op"])
CACHE_SKIPS = Counter("saascore_cache_skips_total", "Answers not cached, by reason.", ["reason"])
CACHE_BREAKER_STATE = Gauge(
    "saascore_cache_circuit_breaker_open", "1 while the cache's Redis circuit breaker is open or half-open."
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
    "saascore_llm_tokens_total", "Tokens consumed by generation, by model and direction.", ["model", "direction"]
)
COST_USD = Counter("saascore_cost_usd_total", "Cost of answered requests in USD.", ["source"])
SAVED_USD = Counter("saascore_saved_usd_total", "Cost saved by cache hits in USD.", ["tier"])
QUERY_SECONDS = Histogram(
    "saascore_query_seconds",
    "Query latency by source.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BUDGET_ALERTS = Counter("saascore_budget_soft_alerts_total", "Tenants passing their soft spend alert threshold.")
