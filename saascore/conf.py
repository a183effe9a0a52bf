"""The ``AI`` settings dict, read through one accessor (as DRF's ``api_settings``).

from saascore.conf import ai_settings
ai_settings.REDIS_SOCKET_TIMEOUT
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Redis calls of the cache fail fast and count as misses (fail open).
    "REDIS_SOCKET_TIMEOUT": 0.25,
    "REDIS_CONNECT_TIMEOUT": 0.25,
    # Size for gunicorn threads x a few concurrent calls; waiting for a free
    # connection is bounded by REDIS_POOL_TIMEOUT instead of failing at once.
    "REDIS_MAX_CONNECTIONS": 64,
    "REDIS_POOL_TIMEOUT": 0.1,
    # REDIS_URL names one node of a Redis Cluster.
    "REDIS_CLUSTER": False,
    # Threads per process for work kept off the event loop (saascore/pools.py): CPU work
    # (embedding, verifier, local router) and blocking PostgreSQL calls of the async path.
    "CPU_THREADS": 2,
    "DB_THREADS": 8,
    # Misses preparing at once per worker process (ai/miss_gate.py): the embedding, routing,
    # reservation and retrieval before the upstream call; the rest wait in line. 0: no gate.
    "MISS_PREPARE_CONCURRENCY": 8,
    # Query requests between their arrival and their exact-tier answer at once per worker process
    # (the door, saascore/door.py): the rest wait, newest first. 0: no door.
    "LOOKUP_CONCURRENCY": 32,
    # The query embedder: {"backend": "local", "model": <name in ai/embeddings/local.py>}
    # or {"backend": "openai", "model": ..., "base_url": ..., "api_key_env": ..., "dimensions": ...}.
    "EMBEDDER": {"backend": "local"},
    "EMBEDDING_MEMO_SIZE": 2048,
    # Providers of the model catalog: where their OpenAI-compatible API is and its key.
    "PROVIDERS": {
        "openai": {"base_url_env": "OPENAI_BASE_URL", "api_key_env": "OPENAI_API_KEY"},
        "anthropic": {"base_url_env": "ANTHROPIC_BASE_URL", "api_key_env": "ANTHROPIC_API_KEY"},
    },
    "LLM_TIMEOUT": 30.0,
    # An admitted request's spend reservation expires after this if its worker died before
    # ending it (longer than any request: its model chain with every retry).
    "SPEND_RESERVATION_SECONDS": 600,
    # Single flight: a leader's lock lives this long without renewal (its process renews it
    # while it works), so a killed leader is replaced by one of its followers within it.
    "SINGLE_FLIGHT_LOCK_TTL": 10.0,
    "LLM_MAX_RETRIES": 2,
    # The LLM router answers within this or the fail-safe decision is used.
    "ROUTER_LLM_TIMEOUT": 3.0,
    # How long a server capability probe (vector sets, RediSearch) is trusted.
    "REDIS_CAPABILITIES_TTL": 60.0,
    # Tenant settings, budgets and prices are cached per process this long (an edit elsewhere
    # reaches every worker within it; an edit in the same process applies at once).
    "ROW_CACHE_SECONDS": 2.0,
    # False: exact-match caching only. The semantic tier is neither searched nor
    # written (no vectors stored), as on a Redis without a vector API; the
    # end-to-end benchmark compares the two (bench/e2e_bench.py).
    "SEMANTIC_TIER": True,
    # A semantic hit is refused when another candidate that asks something else (not about
    # the same document, its own cosine to the chosen one below the threshold) is within this
    # much cosine of it: the query sits between two cached questions (ai/cache/judge.py, 6).
    # 0: off. Chosen on Banking77 (docs/benchmarks.md, issue 17).
    "AMBIGUITY_MARGIN": 0.05,
    # Tenants (slugs or ids) whose queries, cost and savings get their own `tenant`
    # label in the metrics; every other tenant is `other`. Keep it short: each
    # entry multiplies those series.
    "METRICS_TENANT_ALLOWLIST": [],
    # The naive baseline of the savings report (billing_report, the ROI figures): every
    # request answered by this model, with no cache.
    "BASELINE_MODEL": "gpt-4o",
    # The cache's verifier when neither the tenant nor the operators activated one: a model
    # trained on public labelled pairs, shipped with the code (ai/verifier/default/README.md).
    # "" or None: no verifier by default (cosine and guards only).
    "DEFAULT_VERIFIER": str(Path(__file__).resolve().parent.parent / "ai" / "verifier" / "default" / "verifier.pkl.xz"),
}


class AISettings:
    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown AI setting: {name}")
        if name not in self._cache:
            self._cache[name] = getattr(settings, "AI", {}).get(name, DEFAULTS[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


ai_settings = AISettings()


def _reload(*, setting: str, **kwargs) -> None:
    if setting == "AI":
        ai_settings.reload()


setting_changed.connect(_reload)
