"""No API key plaintext in any log line, table, Redis value or spool file.

A key is used on every operation of the API, replayed through ``Idempotency-Key``, minted
in the admin (shown once on the page), revoked and tried again; near misses (a wrong
secret, a key in the URL) are refused. The server logs at DEBUG. Afterwards none of those
keys appears in the server's output (gunicorn's and the application's JSON lines), in any
row of any table, in the Redis values, or in the usage spool. (Every other test of the
suite makes the same check when it ends, for the keys it made: ``conftest.plaintext``.)
"""

import re
import secrets
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from django.conf import settings
from django.contrib.auth import get_user_model

from tests.reliability import plaintext as leaks
from tests.reliability.load import post_query
from tests.reliability.world import starter_router, world
from tests.serving import http

PASSWORD = "a-long-operator-password"


class Browser:
    """A signed-in session over real HTTP: cookies, and Django's CSRF token from each form."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.read().decode()

    def submit(self, path: str, fields: dict) -> str:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(path)).group(1)
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=30) as response:
            return response.read().decode()


def test_no_api_key_plaintext_in_logs_tables_redis_or_spool(serve, plaintext):
    starter_router()
    w = world("plaintext", plaintext.keys)
    get_user_model().objects.create_superuser("operator", password=PASSWORD)
    with serve(workers=2, LOG_LEVEL="DEBUG") as server:
        base, bearer = server.base, {"Authorization": f"Bearer {w.key}"}
        # The key at work: queries (a miss, a hit, an idempotent replay) and every read.
        for headers in ({}, {}, {"Idempotency-Key": "order-1"}, {"Idempotency-Key": "order-1"}):
            status, answered, replayed, _ = post_query(
                base, w.key, {"query": "How do I get a refund?"}, headers=headers
            )
            assert status == 200, replayed
        assert answered.get("Idempotent-Replay") == "true"
        for path in ("/api/v1/tenant", "/api/v1/keys", "/api/v1/documents", "/api/v1/billing/summary",
                     "/api/v1/billing/usage"):  # fmt: skip
            assert http("GET", base + path, bearer)[0] == 200, path
            assert http("GET", base + path, {"X-API-Key": w.key})[0] == 200, path

        # A key minted in the admin: shown once on the page that answers the POST.
        admin = Browser(base)
        admin.submit("/admin/login/?next=/admin/", {"username": "operator", "password": PASSWORD})
        page = admin.submit("/admin/tenants/apikey/add/", {"tenant": w.tenant.pk, "name": "minted"})
        (minted,) = re.findall(rf"sc_{w.tenant.pk}_[A-Za-z0-9_-]{{40,}}", page)
        plaintext.keys.append(minted)
        status, _, listed = http("GET", f"{base}/api/v1/keys", {"Authorization": f"Bearer {minted}"})
        assert status == 200
        minted_id = next(k["id"] for k in listed if k["name"] == "minted")
        assert http("DELETE", f"{base}/api/v1/keys/{minted_id}", bearer)[0] == 200  # revoked...
        assert http("GET", f"{base}/api/v1/tenant", {"Authorization": f"Bearer {minted}"})[0] == 401  # ...refused

        # Near misses: a wrong secret for the tenant, a key put in the URL.
        guessed = f"sc_{w.tenant.pk}_{secrets.token_urlsafe(32)}"
        plaintext.keys.append(guessed)
        assert http("GET", f"{base}/api/v1/tenant", {"Authorization": f"Bearer {guessed}"})[0] == 401
        assert http("GET", f"{base}/api/v1/tenant?api_key={urllib.parse.quote(w.key)}")[0] == 401

    plaintext.check(redis_urls=[])
    # The searches see what is there: the key's hash in its row, the replayed answer in Redis.
    assert leaks.tables_holding([w.api_key.hashed_key]) == ["tenants_apikey"]
    assert leaks.redis_keys_holding([replayed["request_id"]], settings.REDIS_URL)
