"""The reliability suite's tenants, made through the services like any other rows.

Each tenant has documents that carry canary strings of its own (``CANARY-<slug>-<random>``),
so that any answer, citation or cache hit that crosses tenants names its origin.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ai.rag.models import Document
from ai.rag.services import documents_bulk_upsert
from ai.router.decisions import Complexity, Intent
from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
from ai.router.models import RouteRule
from billing.models import SpendCounter, SpendReservation, TenantBudget, UsageRecord
from billing.services import period_of
from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope
from tests.factories import make_key, make_tenant


@dataclass
class World:
    """One tenant of the suite: its key, its canaries, and its documents (id -> title)."""

    tenant: Tenant
    api_key: ApiKey
    key: str
    canaries: list[str]
    documents: dict[int, str]

    @property
    def slug(self) -> str:
        return self.tenant.slug


def starter_router() -> None:
    """The starter few-shot examples as global rows (a flush between tests empties them)."""
    router_examples_import(rows=parse_lines(STARTER_EXAMPLES.read_text().splitlines()), tenant=None)


def canary_documents(slug: str) -> tuple[list[str], list[dict]]:
    canaries = [f"CANARY-{slug}-{secrets.token_hex(4)}" for _ in range(3)]
    refund, hours, recovery = canaries
    return canaries, [
        {
            "title": f"Refund policy ({slug})",
            "content": "Refunds are issued within 14 days of a purchase. To get a refund, quote the refund "
            f"authorisation code {refund} to the support team. Refunds go back to the original payment method.",
        },
        {
            "title": f"Support hours ({slug})",
            "content": "Our support desk is open Monday to Friday, 9am to 5pm. Outside those hours, use the "
            f"escalation line and give the escalation password {hours}.",
        },
        {
            "title": f"Two-factor authentication ({slug})",
            "content": "To set up two-factor authentication, open Settings, then Security, and scan the QR code. "
            f"Keep the recovery phrase {recovery} somewhere safe.",
        },
    ]


def world(slug: str, keys: list[str]) -> World:
    """A tenant with its canary documents ingested and an API key (added to ``keys``)."""
    tenant = make_tenant(slug=slug)
    canaries, rows = canary_documents(slug)
    documents_bulk_upsert(tenant=tenant, rows=rows)
    api_key, key = make_key(tenant)
    keys.append(key)
    with tenant_scope(tenant):
        documents = dict(Document.objects.for_tenant(tenant).values_list("pk", "title"))
    return World(tenant, api_key, key, canaries, documents)


def route_everything(tenant: Tenant, model: str, fallbacks: list[str] | None = None) -> None:
    """Every (intent, complexity) of the tenant goes to ``model``: a tenant's own route table."""
    with tenant_scope(tenant):
        for intent in Intent:
            for complexity in Complexity:
                RouteRule.objects.for_tenant(tenant).update_or_create(
                    tenant=tenant, intent=intent, complexity=complexity,
                    defaults={"model": model, "fallbacks": fallbacks or []},
                )  # fmt: skip


def set_budget(tenant: Tenant, *, spent: Decimal | None = None, **limits) -> None:
    """The tenant's limits, and (``spent``) what its month has already cost."""
    with tenant_scope(tenant):
        TenantBudget.objects.for_tenant(tenant).update_or_create(tenant=tenant, defaults=limits)
        if spent is not None:
            SpendCounter.objects.for_tenant(tenant).update_or_create(
                tenant=tenant, period=period_of(datetime.now(UTC)), defaults={"committed": spent}
            )


def ledger(tenant: Tenant) -> list[UsageRecord]:
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant))


def committed(tenant: Tenant) -> Decimal:
    with tenant_scope(tenant):
        counter = SpendCounter.objects.for_tenant(tenant).filter(period=period_of(datetime.now(UTC))).first()
    return counter.committed if counter else Decimal(0)


def live_reservations(tenant: Tenant) -> Decimal:
    """What the tenant's unexpired reservations hold."""
    with tenant_scope(tenant):
        rows = SpendReservation.objects.for_tenant(tenant).filter(expires_at__gt=datetime.now(UTC))
        return sum((row.amount for row in rows), Decimal(0))


def reservation_rows(tenant: Tenant) -> int:
    with tenant_scope(tenant):
        return SpendReservation.objects.for_tenant(tenant).count()
