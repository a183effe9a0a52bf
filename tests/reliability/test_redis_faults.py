"""Redis faults under load: down at start, killed, restarted, paused and resumed.

A few clients ask throughout, against gunicorn with 2 workers on a Redis of the test's
own. The cache fails open: every request is answered (200), the ledger has one row per
answer, and no reservation is left. Once a worker's circuit breaker has opened, a
paused Redis costs it nothing: requests stop paying the socket timeout, except one probe
per worker each time the breaker half-opens.
"""

import math
import os
import signal
import statistics
import time
from collections import Counter
from decimal import Decimal

from tests.redis_servers import private_redis
from tests.reliability.load import Answer, Client, Load
from tests.reliability.workers import per_worker
from tests.reliability.world import ledger, reservation_rows, set_budget, starter_router, world
from tests.serving import wait_until

SOCKET_TIMEOUT = 2.0  # the served cache's Redis timeouts: long enough to tell apart from work
BREAKER_RESET = 5.0  # ai/cache/breaker.py's cool-down before a half-open probe
QUESTIONS = [
    {"query": "How do I get a refund?"},
    {"query": "How can I get a refund?"},
    {"query": "How do I set up two-factor authentication?"},
    {"query": "How can I set up two-factor authentication?"},
    {"query": "When is the support desk open?"},
]


def hits(answers: list[Answer]) -> bool:
    """Both tiers answered: the cache (and its vector API) works."""
    tiers = {a.cache for a in answers}
    return {"HIT-EXACT", "HIT-SEMANTIC"} <= tiers


def within(answers: list[Answer], start: float, end: float) -> list[Answer]:
    """The requests made and answered entirely between ``start`` and ``end``."""
    return [a for a in answers if a.started >= start and a.started + a.seconds <= end]


def test_redis_down_killed_restarted_paused_and_resumed_under_load(serve, plaintext, tmp_path):
    starter_router()
    worlds = [world(f"redisfault{n}", plaintext.keys) for n in range(2)]
    for w in worlds:  # a spend limit (reservations) and a rate limit (a Redis call) on every request
        set_budget(w.tenant, monthly_spend_limit=Decimal("100"), requests_per_minute=1_000_000)
    clients = [
        Client(f"{w.slug}/{c}", w.tenant.pk, w.key, QUESTIONS[c:] + QUESTIONS[:c]) for w in worlds for c in range(2)
    ]
    metrics = tmp_path / "metrics"
    timeouts = {"REDIS_SOCKET_TIMEOUT": SOCKET_TIMEOUT, "REDIS_CONNECT_TIMEOUT": SOCKET_TIMEOUT}
    with private_redis(tmp_path) as redis_server:
        redis_pid = lambda: int((tmp_path / "redis" / "redis.pid").read_text())  # noqa: E731
        redis_server.stop()  # down when the workers first need it
        env = {"REDIS_URL": redis_server.url, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        with serve(workers=2, ai=timeouts, **env) as server, Load(server.base, clients) as load:
            load.wait_count(20, since=0, what="answers without Redis")

            redis_server.start()
            up = load.mark()
            load.wait(hits, since=up, timeout=90, what="hits once Redis is up")

            os.kill(redis_pid(), signal.SIGKILL)
            killed, killed_at = load.mark(), time.monotonic()
            load.wait_count(30, since=killed, what="answers with Redis killed")

            restarted_at = time.monotonic()
            redis_server.start()
            load.wait(hits, since=load.mark(), timeout=90, what="hits after the restart")

            pid = redis_pid()
            os.kill(pid, signal.SIGSTOP)
            paused_at = time.monotonic()
            try:
                wait_until(
                    lambda: set(server.workers()) <= {
                        p for p, v in per_worker(metrics, "saascore_cache_circuit_breaker_open").items() if v == 1
                    },
                    timeout=60, what="every worker's breaker to open",
                )  # fmt: skip
                opened, opened_at = load.mark(), time.monotonic()
                load.wait(
                    lambda new: sum(a.started >= opened_at for a in new) >= 40,
                    since=opened, timeout=60, what="40 requests made with the breakers open",
                )  # fmt: skip
                open_seconds = time.monotonic() - opened_at
            finally:
                resumed_at = time.monotonic()
                os.kill(pid, signal.SIGCONT)
            resumed = load.mark()
            load.wait(hits, since=resumed, timeout=90, what="hits after Redis resumed")
        plaintext.check(redis_urls=[redis_server.url])  # before this Redis goes
    answers = load.answers

    assert Counter(a.status for a in answers) == Counter({200: len(answers)}), "the cache must fail open"
    for dead in (within(answers, killed_at, restarted_at), within(answers, paused_at, resumed_at)):
        assert dead and not any(a.cache.startswith("HIT") for a in dead)  # Redis really was gone
    # Paused: after the breakers opened, nothing waits for Redis but one probe per worker per cool-down.
    after_open = [a for a in answers[opened:resumed] if a.started >= opened_at]
    slow = [a for a in after_open if a.seconds >= SOCKET_TIMEOUT]
    probes = 2 * (math.ceil(open_seconds / BREAKER_RESET) + 1)
    assert len(after_open) >= 40 and len(slow) <= probes, (len(slow), probes, [a.seconds for a in slow])
    assert statistics.median(a.seconds for a in after_open) < SOCKET_TIMEOUT / 4
    # Money: one ledger row per answer, and every reservation ended with its request.
    for w in worlds:
        rows = sorted(r.request_id for r in ledger(w.tenant))
        assert rows == sorted(a.request_id for a in answers if a.tenant_id == w.tenant.pk)
        assert reservation_rows(w.tenant) == 0
