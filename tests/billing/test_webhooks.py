"""Budget alerts as webhooks: signed, retried with backoff, recorded, never sent twice; a key's
soft level alerts like its tenant's. A real HTTP server receives them; no clock is slept on."""

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest

from billing.key_limits import api_key_limits_set
from billing.models import BudgetAlert
from billing.services import Usage, usage_record
from billing.webhooks import budget_alert_deliver, budget_alert_record
from tenants.scoping import tenant_scope
from tests.factories import make_key, make_tenant
from tests.reliability.world import set_budget

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "whsec-test"


class Receiver:
    """A webhook endpoint: answers ``statuses`` in turn (then 200), keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.received = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/budget"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    found = Receiver([500])
    yield found
    found.close()


def spend(tenant, request_id: str, dollars: str, api_key=None) -> None:
    tokens = int(Decimal(dollars) * 1_000_000 / 5)  # gpt-4o: $5 per million input tokens
    usage = Usage(request_id=request_id, source="llm", model="gpt-4o", input_tokens=tokens,
                  api_key_id=api_key.pk if api_key else None)  # fmt: skip
    usage_record(tenant=tenant, usage=usage)


def alerts(tenant) -> list[BudgetAlert]:
    with tenant_scope(tenant):
        return list(BudgetAlert.objects.for_tenant(tenant).order_by("pk"))


def verified(headers: dict, body: bytes) -> bool:
    when, _, digest = headers["X-Saascore-Signature"].partition(",v1=")
    signed = when.removeprefix("t=").encode() + b"." + body
    return hmac.compare_digest(digest, hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest())


def test_a_soft_level_passed_is_signed_retried_with_backoff_and_never_sent_twice(receiver):
    tenant = make_tenant()
    set_budget(tenant, monthly_spend_limit=Decimal("1"), soft_alert_ratio=Decimal("0.5"), requests_per_minute=None,
               alert_webhook_url=receiver.url, alert_webhook_secret=SECRET)  # fmt: skip
    spend(tenant, "r1", "0.30")
    assert alerts(tenant) == [] and receiver.received == []
    spend(tenant, "r2", "0.30")  # passes 50%: recorded, and the first attempt (the task) fails with a 500
    (alert,) = alerts(tenant)
    assert (alert.status, alert.attempts, alert.last_error) == ("pending", 1, "HTTP 500")
    first_try = alert.next_attempt_at - timedelta(seconds=30)
    assert alert.next_attempt_at > datetime.now(UTC)  # the backoff: 30 s after the failure

    early = budget_alert_deliver(alert_id=alert.pk, tenant_id=tenant.pk, now=first_try + timedelta(seconds=10))
    assert early.attempts == 1 and len(receiver.received) == 1  # not due: nothing sent
    done = budget_alert_deliver(alert_id=alert.pk, tenant_id=tenant.pk, now=alert.next_attempt_at)
    assert (done.status, done.attempts) == ("delivered", 2) and done.delivered_at is not None
    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        assert verified(headers, body) and headers["X-Saascore-Delivery"] == str(alert.pk)
        sent = json.loads(body)
        assert (sent["type"], sent["scope"], sent["tenant_id"]) == ("budget.soft_limit_passed", "tenant", tenant.pk)
        assert Decimal(sent["spent_usd"]) == Decimal("0.6") and sent["limit_usd"] == "1.0000"

    spend(tenant, "r3", "0.10")  # still past the level: no second alert
    assert budget_alert_record(tenant_id=tenant.pk, api_key_id=None, period=alert.period, limit=Decimal(1),
                               spent=Decimal("0.7")) is None  # fmt: skip
    assert len(alerts(tenant)) == 1
    assert budget_alert_deliver(alert_id=alert.pk, tenant_id=tenant.pk).attempts == 2  # delivered: never again
    assert len(receiver.received) == 2


def test_a_keys_soft_level_alerts_for_the_key_and_gives_up_after_its_attempts(receiver):
    tenant = make_tenant()
    set_budget(tenant, requests_per_minute=None, alert_webhook_url=receiver.url, alert_webhook_secret=SECRET)
    api_key, _ = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"budget_usd": "1", "soft_alert_ratio": "0.5"})
    receiver.statuses = [503] * 10
    spend(tenant, "k1", "0.60", api_key)
    (alert,) = alerts(tenant)
    assert (alert.key_ref, alert.api_key_id, alert.attempts) == (api_key.pk, api_key.pk, 1)
    assert json.loads(receiver.received[0][1])["scope"] == "key"
    waits = []
    while alert.status == "pending":
        waits.append(alert.next_attempt_at)
        alert = budget_alert_deliver(alert_id=alert.pk, tenant_id=tenant.pk, now=alert.next_attempt_at)
    assert (alert.status, alert.attempts, alert.last_error) == ("failed", 5, "HTTP 503")
    gaps = [later - earlier for earlier, later in pairwise(waits)]
    assert gaps == sorted(gaps) and gaps[0] < gaps[-1]  # backing off
