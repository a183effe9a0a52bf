"""/metrics: the product's series, correct under several gunicorn workers, and valid for Prometheus."""

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import RemoteDisconnected
from pathlib import Path
from urllib.error import URLError

from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import auth
from tests.serving import gunicorn, http

QUERIES = ["How do I reset my password?", "how do i reset my password", "What are your support hours?"]


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` whose labels include ``labels``."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def scrape(base: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        return response.read().decode()


def per_process(metrics_dir: Path, name: str, **labels: str) -> dict[int, float]:
    """What each worker (pid) counted, read from its own counter file."""
    counts = {}
    for file in metrics_dir.glob("counter_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        merged = multiprocess.MultiProcessCollector.merge([str(file)])
        counts[pid] = sum(
            s.value for m in merged for s in m.samples if s.name == name and labels.items() <= s.labels.items()
        )
    return counts


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ready_status(base: str) -> int:
    """GET /health/ready, asked again when the connection is reset unread: a worker that reaches
    --max-requests closes the connections it accepted but had not read yet (uvicorn's shutdown),
    and such a request never reached Django, so nothing counted it."""
    for _ in range(3):
        try:
            return http("GET", f"{base}/health/ready")[0]
        except (ConnectionResetError, RemoteDisconnected):
            continue
        except URLError as error:
            if not isinstance(error.reason, ConnectionResetError):
                raise
    raise AssertionError("three connections in a row were reset")


def test_counters_add_up_across_gunicorn_workers(helpdesk, tmp_path):
    """Two workers, each restarted after 15 requests: /metrics counts every request of
    every worker, the dead ones included, and no dead worker's live gauge lingers."""
    _, key = helpdesk()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # cleared at start, or /metrics fails
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ready_calls = 40
    workers = {"WEB_CONCURRENCY": "2", "GUNICORN_CMD_ARGS": "--max-requests 15"}
    with gunicorn(**workers, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as base:
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda _: ready_status(base), range(ready_calls)))
        assert statuses == [200] * ready_calls
        for query in QUERIES:
            status, _, body = http("POST", f"{base}/api/v1/ai/query", headers, json.dumps({"query": query}).encode())
            assert status == 200, body

        deadline = time.monotonic() + 20
        while True:  # gunicorn reaps restarted workers (child_exit) asynchronously
            live_gauge_pids = [int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("gauge_livemax_*.db")]
            if all(alive(pid) for pid in live_gauge_pids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert live_gauge_pids and all(alive(pid) for pid in live_gauge_pids), live_gauge_pids
        text = scrape(base)

    assert not (metrics_dir / "counter_1.db").exists()
    ready = {"view": "health-ready", "status": "200"}
    by_worker = per_process(metrics_dir, "django_http_responses_total_by_status_view_method_total", **ready)
    assert len([pid for pid, count in by_worker.items() if count]) >= 2, by_worker  # several workers served
    assert samples(text, "django_http_responses_total_by_status_view_method_total", **ready) == [ready_calls]
    assert sum(by_worker.values()) == ready_calls

    assert sum(samples(text, "saascore_queries_total")) == len(QUERIES)
    assert sum(samples(text, "saascore_query_seconds_count")) == len(QUERIES)
    assert sum(samples(text, "saascore_cache_requests_total", tier="exact")) == len(QUERIES)
    assert samples(text, "saascore_cache_requests_total", tier="exact", result="hit") == [1]
    assert sum(samples(text, "saascore_routing_decisions_total")) == 2  # the exact hit is not routed
    assert samples(text, "saascore_cache_circuit_breaker_open") == [0]  # one merged value, no pid label


def test_product_series_after_queries_and_promtool_accepts_them(api_client, helpdesk, client):
    tenant, key = helpdesk()
    for query in QUERIES:
        assert api_client.post("/api/v1/ai/query", {"query": query}, format="json", **auth(key)).status_code == 200
    text = client.get("/metrics").content.decode()

    for name in (
        "saascore_cache_requests_total",
        "saascore_cache_lookup_seconds_bucket",
        "saascore_router_confidence_bucket",
        "saascore_routing_decisions_total",
        "saascore_llm_tokens_total",
        "saascore_cost_usd_total",
        "saascore_saved_usd_total",
        "saascore_queries_total",
        "saascore_query_seconds_bucket",
        "saascore_cache_circuit_breaker_open",
    ):
        assert samples(text, name), f"{name} missing from /metrics"
    assert samples(text, "saascore_llm_tokens_total", model="local-extractive", direction="output")[0] > 0
    assert samples(text, "saascore_queries_total", source="cache_exact", tenant="other")[0] >= 1
    assert tenant.slug not in text  # no tenant label unless allow-listed

    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed: apt-get install prometheus (make test does)"
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    # promtool's lint notes (e.g. django-prometheus's counters named *_total_by_*) are printed; its exit code is 0
    # unless the exposition itself is broken.
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_allow_listed_tenants_get_their_own_label(api_client, helpdesk, client, settings):
    listed, listed_key = helpdesk()
    other, other_key = helpdesk()
    settings.AI = {"METRICS_TENANT_ALLOWLIST": [listed.slug]}
    for key in (listed_key, other_key):
        api_client.post("/api/v1/ai/query", {"query": QUERIES[2]}, format="json", **auth(key))
    text = client.get("/metrics").content.decode()
    assert samples(text, "saascore_queries_total", source="llm", tenant=listed.slug) == [1]
    assert samples(text, "saascore_cost_usd_total", source="llm", tenant=listed.slug)
    assert listed.slug in _tenant_labels(text) and other.slug not in _tenant_labels(text)


def _tenant_labels(text: str) -> set[str]:
    return {
        sample.labels["tenant"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "tenant" in sample.labels
    }


def test_product_labels_are_bounded():
    """No series of ours is labelled by anything a caller chooses (query text, user or request ids)."""
    from saascore import metrics

    labels = {name for value in vars(metrics).values() if hasattr(value, "_labelnames") for name in value._labelnames}
    assert "tenant" in labels and not labels & {"query", "user", "user_id", "request_id", "tenant_id"}
