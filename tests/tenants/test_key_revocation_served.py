"""A revoked key is refused by every worker process within a second.

The served product (gunicorn, two uvicorn workers) verifies keys from memory (1 s) and
from a Redis record (tenants/key_cache.py); a revocation moves the tenant's generation
after it commits. Requests keep coming from four clients across the revocation: every
request sent more than a second after the commit must get 401, whichever worker takes it.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tenants.services import api_key_revoke
from tests.serving import http, served


def only_key(tenant) -> int:
    with tenant_scope(tenant):
        return ApiKey.objects.for_tenant(tenant).get().pk


QUESTION = {"query": "How do I reset my password?"}
LOCAL_SECONDS = 1.0


def post(base: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return http("POST", f"{base}/api/v1/ai/query", headers, json.dumps(QUESTION).encode())[0]


def test_a_revocation_reaches_both_workers_within_a_second(helpdesk):
    tenant, key = helpdesk()
    with served(workers=2) as server, ThreadPoolExecutor(4) as pool:
        assert post(server.base, key) == 200  # the miss; then hits from both workers' caches
        assert set(pool.map(lambda _: post(server.base, key), range(40))) == {200}

        outcomes: list[tuple[float, int]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                outcomes.append((sent, post(server.base, key)))

        clients = [pool.submit(client) for _ in range(4)]
        api_key_revoke(tenant=tenant, key_id=only_key(tenant))
        committed = time.monotonic()
        deadline = committed + LOCAL_SECONDS + 1.0
        while time.monotonic() < deadline and not any(c.done() for c in clients):
            stop.wait(0.05)
        stop.set()
        for c in clients:
            c.result()

    late = [status for sent, status in outcomes if sent > committed + LOCAL_SECONDS]
    assert late, "no request was sent after the second had passed"
    assert set(late) == {401}, sorted(set(late))
    assert {status for _, status in outcomes} <= {200, 401}
