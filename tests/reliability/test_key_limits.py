"""A key's own limits over real HTTP, against gunicorn with 2 workers, under concurrent bursts:
exact across the two processes (one Redis script admits each request), and a key's parallel
slots are freed when its requests end. (The tenant has no documents: no ingestion.)"""

import threading
from collections import Counter

from billing.key_limits import api_key_limits_set
from tests.factories import make_key, make_tenant
from tests.openai_server import OpenAIServer, Reply
from tests.reliability.load import post_query
from tests.reliability.test_limits import burst
from tests.reliability.world import ledger, route_everything, starter_router
from tests.serving import wait_until

KEY_RPM = 25
BURST = 120
PARALLEL = 3
HELD = 8


def test_a_keys_requests_per_minute_are_exact_across_two_workers(serve, plaintext):
    starter_router()
    tenant = make_tenant()
    route_everything(tenant, "local-extractive")
    api_key, key = make_key(tenant)
    plaintext.keys.append(key)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"requests_per_minute": KEY_RPM})
    with serve(workers=2) as server:
        results = burst(server.base, key, {"query": "How do I get a refund?", "cache": "bypass"}, BURST)
    statuses = Counter(status for status, *_ in results)
    # Exactly the limit answered: a request a busy worker could not count is refused (503), never
    # admitted uncounted (billing/admission.py, counted_windows).
    assert statuses[200] == KEY_RPM and statuses[429] + statuses[503] == BURST - KEY_RPM, statuses
    for status, headers, body, _ in results:
        if status == 503:
            assert body["error"]["code"] == "overloaded" and headers["Retry-After"] == "1"
            continue
        assert headers["x-ratelimit-limit-requests"] == str(KEY_RPM)
        if status == 429:
            details = body["error"]["details"]
            assert (details["limit"], details["scope"]) == ("requests_per_minute", "key")
            assert 0 < int(headers["Retry-After"]) <= 60
    answered = sorted(body["request_id"] for status, _, body, _ in results if status == 200)
    assert sorted(r.request_id for r in ledger(tenant)) == answered
    assert all(r.api_key_id == api_key.pk for r in ledger(tenant))


def test_a_keys_parallel_requests_are_exact_and_freed_when_they_end(serve, plaintext):
    starter_router()
    tenant = make_tenant()
    route_everything(tenant, "gpt-4o-mini")
    api_key, key = make_key(tenant)
    plaintext.keys.append(key)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"max_parallel_requests": PARALLEL})
    release = threading.Event()
    with OpenAIServer() as upstream:
        upstream.default = Reply(content="Refunds take 14 days.", hold=release)
        env = {"OPENAI_API_KEY": "sk-test-upstream", "OPENAI_BASE_URL": upstream.base_url}
        with serve(workers=2, **env) as server:
            body = {"query": "How do I get a refund?", "cache": "bypass"}
            results: list = []
            threads = [threading.Thread(target=lambda: results.append(post_query(server.base, key, body)))
                       for _ in range(HELD)]  # fmt: skip
            for thread in threads:
                thread.start()
            # Those over the limit are refused at once, while the first ones are held upstream.
            wait_until(lambda: len(results) == HELD - PARALLEL, timeout=30, what="the refusals")
            assert {status for status, *_ in results} == {429}
            assert all(r[2]["error"]["details"]["limit"] == "parallel_requests" for r in results)
            release.set()  # the held ones answer and free their slots
            for thread in threads:
                thread.join(timeout=60)
            assert Counter(status for status, *_ in results) == Counter({200: PARALLEL, 429: HELD - PARALLEL})
            again = post_query(server.base, key, body)
            assert again[0] == 200, again  # every slot was freed
