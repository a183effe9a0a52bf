"""Budget alerts as webhooks: recorded once, signed, retried with backoff.

- ``budget_alert_record``: a tenant or key passed its soft level in a period. One
  ``BudgetAlert`` row per (tenant, key, period), made under a unique constraint, so a replayed
  ledger row or two processes crossing together never alert twice. Its delivery is queued
  (django-tasks) only by the process whose row it is.
- ``budget_alert_deliver``: one attempt. The body is JSON; ``X-Saascore-Signature`` is
  ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the tenant's secret>`` (Stripe's scheme:
  the time in the signature lets a receiver refuse replays), ``X-Saascore-Delivery`` the alert id
  (a receiver's idempotency key). A 2xx answer is delivered; anything else is recorded
  (attempts, error) and retried after ``BACKOFF_SECONDS * 4**(attempts - 1)`` (30 s, 2 min,
  8 min, 32 min), until ``MAX_ATTEMPTS``, then marked failed.

Not guaranteed: delivery while the task worker is down (the alert waits in its row).
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django_tasks import task

from billing.models import BudgetAlert, TenantBudget
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 30
TIMEOUT_SECONDS = 5


def new_secret() -> str:
    return secrets.token_hex(32)


def sign(secret: str, body: bytes, when: int) -> str:
    digest = hmac.new(secret.encode(), str(when).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={when},v1={digest}"


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF_SECONDS * 4 ** max(0, attempts - 1))


def budget_alert_record(
    *, tenant_id: int, api_key_id: int | None, period: str, limit: Decimal, spent: Decimal
) -> BudgetAlert | None:
    """Record that a soft level was passed; queue its webhook. None: it was already recorded."""
    with tenant_scope(tenant_id), transaction.atomic():
        budget = TenantBudget.objects.for_tenant(tenant_id).first()
        url = budget.alert_webhook_url if budget else ""
        alert, created = BudgetAlert.objects.for_tenant(tenant_id).get_or_create(
            tenant_id=tenant_id, key_ref=api_key_id or 0, period=period,
            defaults={"api_key_id": api_key_id, "limit_usd": limit, "spent_usd": spent,
                      "status": BudgetAlert.Status.PENDING if url else BudgetAlert.Status.NO_WEBHOOK},
        )  # fmt: skip
        if created and url:
            transaction.on_commit(lambda: _enqueue(alert.pk, tenant_id))
    return alert if created else None


@task()
def deliver_budget_alert(*, alert_id: int, tenant_id: int) -> None:
    """One attempt (``manage.py db_worker`` runs it); a failed one queues the next after its backoff."""
    budget_alert_deliver(alert_id=alert_id, tenant_id=tenant_id)


def _enqueue(alert_id: int, tenant_id: int, run_after: datetime | None = None) -> None:
    task = deliver_budget_alert
    if run_after is not None:
        if not task.get_backend().supports_defer:
            return  # no deferred tasks here (tests): the next attempt waits for a call of its own
        task = task.using(run_after=run_after)
    task.enqueue(alert_id=alert_id, tenant_id=tenant_id)


def payload(alert: BudgetAlert) -> dict:
    return {
        "type": "budget.soft_limit_passed",
        "alert_id": alert.pk,
        "tenant_id": alert.tenant_id,
        "scope": "key" if alert.key_ref else "tenant",
        "api_key_id": alert.api_key_id,
        "period": alert.period,
        "limit_usd": str(alert.limit_usd),
        "spent_usd": str(alert.spent_usd.quantize(Decimal("0.000001"))),
        "created_at": alert.created_at.isoformat().replace("+00:00", "Z"),
    }


def budget_alert_deliver(*, alert_id: int, tenant_id: int, now: datetime | None = None) -> BudgetAlert:
    """One delivery attempt of a pending alert whose time has come (else nothing is sent)."""
    now = now or datetime.now(UTC)
    with tenant_scope(tenant_id):
        alert = BudgetAlert.objects.for_tenant(tenant_id).get(pk=alert_id)
        budget = TenantBudget.objects.for_tenant(tenant_id).first()
    due = alert.next_attempt_at is None or alert.next_attempt_at <= now
    if alert.status != BudgetAlert.Status.PENDING or not due or budget is None or not budget.alert_webhook_url:
        return alert
    error = _post(budget.alert_webhook_url, budget.alert_webhook_secret, payload(alert), alert.pk)
    alert.attempts += 1
    if error is None:
        alert.status, alert.delivered_at, alert.last_error, alert.next_attempt_at = (
            BudgetAlert.Status.DELIVERED, now, "", None
        )  # fmt: skip
    else:
        alert.last_error = error[:300]
        gave_up = alert.attempts >= MAX_ATTEMPTS
        alert.status = BudgetAlert.Status.FAILED if gave_up else BudgetAlert.Status.PENDING
        alert.next_attempt_at = None if gave_up else now + backoff(alert.attempts)
        logger.warning("budget alert %s: attempt %d failed: %s", alert.pk, alert.attempts, alert.last_error)
    with tenant_scope(tenant_id):
        alert.save(update_fields=["attempts", "status", "delivered_at", "last_error", "next_attempt_at"])
    if alert.status == BudgetAlert.Status.PENDING:
        _enqueue(alert.pk, tenant_id, run_after=alert.next_attempt_at)
    return alert


def _post(url: str, secret: str, body: dict, alert_id: int) -> str | None:
    """POST the signed body; None on a 2xx answer, else what went wrong."""
    if not url.startswith(("https://", "http://")):
        return "the webhook URL is not http(s)"
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "saascore-webhooks/1",
        "X-Saascore-Signature": sign(secret, data, int(time.time())),
        "X-Saascore-Delivery": str(alert_id),
    }
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310 (http(s) only)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
