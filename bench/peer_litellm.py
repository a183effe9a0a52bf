"""The peer: the LiteLLM proxy (requirements-bench.txt pins it), run with its documented
production command (``litellm --config cfg.yaml --port P --num_workers 2``: uvicorn,
2 worker processes) on the bench's fake upstream, its Redis and the same workload.

Two configurations, as its documentation gives them:

    exact      ``cache: true``, ``cache_params: {type: redis}``: a key over the
               verbatim request (model, messages, parameters), Redis DB 1
    semantic   ``type: redis-semantic``: RedisVL's SemanticCache on Redis DB 0 (the
               query engine indexes DB 0 only), cosine similarity >= 0.90 (the
               product's ``threshold_standard``), embeddings from the fake upstream's
               ``/v1/embeddings`` (the product's own MiniLM, bench/fake_upstream.py)

Both keep entries for the product's ``cache_ttl_seconds`` (86,400 s; LiteLLM's
default is 60 s). Tenants: LiteLLM isolates keys, teams and end users only with its
PostgreSQL database; without it each bench tenant sends its own ``cache.namespace``,
which prefixes the exact key and, in the semantic cache, the ``litellm_cache_key`` tag
every lookup filters on, so no tenant is answered from another's entries. No database, no master key,
no callbacks: the proxy at its cheapest; a master key made for the run (the proxy refuses
to start without one), sent by every request.

The answer carries the upstream's ``[ref u-000123]``: the first request to get a
reference was the miss, every later one a hit (LiteLLM has no single flight).
"""

import json
import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import stack

TTL_SECONDS = 86_400  # TenantAISettings.cache_ttl_seconds' default
SIMILARITY = 0.90  # TenantAISettings.threshold_standard's default
CHAT_MODEL = "bench-chat"
EMBEDDING_MODEL = "bench-minilm"


def config(*, mode: str, upstream_url: str, redis_socket: Path) -> dict:
    """The proxy's config.yaml (JSON is YAML) for ``mode`` exact or semantic."""
    deployment = {"api_base": upstream_url, "api_key": "bench-key-not-a-secret"}
    models = [
        {"model_name": CHAT_MODEL, "litellm_params": {"model": "openai/gpt-4o-mini", **deployment}},
        {"model_name": EMBEDDING_MODEL, "litellm_params": {"model": "openai/all-minilm-l6-v2", **deployment}},
    ]
    if mode == "exact":
        cache = {"type": "redis", "url": f"unix://{redis_socket}?db=1", "ttl": TTL_SECONDS}
    elif mode == "semantic":
        cache = {
            "type": "redis-semantic",
            "redis_url": f"unix://{redis_socket}?db=0",
            "similarity_threshold": SIMILARITY,
            "redis_semantic_cache_embedding_model": EMBEDDING_MODEL,
            "redis_semantic_cache_index_name": "litellm_bench",
            "ttl": TTL_SECONDS,
        }
    else:
        raise ValueError(mode)
    return {
        "model_list": models,
        "litellm_settings": {"cache": True, "cache_params": cache, "telemetry": False, "num_retries": 0},
        "general_settings": {"disable_spend_logs": True},
    }


@contextmanager
def proxy(*, mode: str, upstream_url: str, log_dir: Path, workers: int = 2):
    """The LiteLLM proxy in its own process; yields (base URL, master pid, master key)."""
    from saascore.embedded import EmbeddedRedis, embedded_paths

    socket = EmbeddedRedis.main(embedded_paths()).socket
    port = stack.free_port()
    path = log_dir / f"litellm-{mode}.yaml"
    path.write_text(json.dumps(config(mode=mode, upstream_url=upstream_url, redis_socket=socket), indent=2))
    log = log_dir / f"litellm-{mode}-{port}.log"
    environment = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start-up
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "LITELLM_MASTER_KEY": "sk-" + secrets.token_hex(32),
    }
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "DJANGO_SETTINGS_MODULE"):
        environment.pop(name, None)
    litellm = Path(sys.executable).with_name("litellm")
    command = [str(litellm), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--num_workers", str(workers)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=log_dir, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        stack._wait(f"http://127.0.0.1:{port}/health/liveliness", process, log, timeout=120)
        yield f"http://127.0.0.1:{port}", process.pid, environment["LITELLM_MASTER_KEY"]
    finally:
        stack._stop(process)
        time.sleep(0.5)


def body(*, text: str, tenant: str, cache: str = "auto") -> dict:
    """A chat completion as an application would send it through the proxy, scoped to ``tenant``."""
    payload = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 500,
        "cache": {"namespace": f"bench-{tenant}"},
    }
    if cache == "bypass":
        payload["cache"] = {"no-cache": True, "no-store": True}
    return payload


def classify(records: list, texts: dict[int, str], mode: str) -> dict[str, dict]:
    """Tell the proxy's hits apart (in place) and make the ledger rows report.config_stats reads.

    The semantic cache answers a verbatim repeat and a paraphrase alike: a hit whose text
    the tenant sent before (in the order the requests started) counts as an exact hit,
    any other as a semantic one. A hit's cached question is the text of the miss that
    got its answer's upstream reference. No costs: the proxy keeps no ledger here.
    """
    seen: set[tuple[str, str]] = set()
    origin: dict[str, str] = {}
    rows: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: r.started):
        if record.status != 200:
            continue
        text = texts[record.index]
        if record.source == "miss" and record.answer_ref:
            origin.setdefault(record.answer_ref, text)
        elif mode == "semantic" and (record.tenant, text) not in seen:
            record.source = "semantic"
        seen.add((record.tenant, text))
    for record in records:
        if record.status == 200:
            cached = origin.get(record.answer_ref or "", texts[record.index]) if record.source != "miss" else ""
            rows[record.request_id] = {
                "request_id": record.request_id, "source": record.source, "model": record.model,
                "cost": Decimal(0), "saved": Decimal(0), "cached_question": cached, "embedding_model": "",
            }  # fmt: skip
    return rows
