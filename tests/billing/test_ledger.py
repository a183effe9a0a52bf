import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import UsageRecord
from billing.services import Usage, spool_flush, usage_record
from billing.spool import spooled_files
from catalog.models import ModelPrice
from tenants.scoping import tenant_scope
from tests.billing.conftest import NOW, record
from tests.factories import make_tenant


def _rows(tenant):
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant).order_by("request_id"))


@pytest.mark.django_db
def test_cost_and_savings_are_exact_decimals():
    tenant = make_tenant()
    row = record(tenant, "a", model="gpt-4o-mini", input_tokens=1000, output_tokens=500)
    assert row["cost"] == Decimal("0.00045")  # 1000 x $0.15/M + 500 x $0.60/M
    hit = record(tenant, "b", source="cache_semantic", model="gpt-4o", saved_input_tokens=1000, saved_output_tokens=500)
    assert hit["cost"] == 0 and hit["saved"] == Decimal("0.0125")  # priced at the routed model
    routed = record(
        tenant, "c", model="gpt-4o", input_tokens=10, output_tokens=10, router_model="gpt-4o-mini",
        router_input_tokens=100, router_output_tokens=10, embedding_model="text-embedding-3-small", embedding_tokens=50,
    )  # fmt: skip
    assert routed["cost"] == Decimal("0.0002") + Decimal("0.000021") + Decimal("0.000001")
    stored = {r.request_id: r for r in _rows(tenant)}
    assert stored["a"].cost == Decimal("0.00045") and isinstance(stored["a"].cost, Decimal)


@pytest.mark.django_db
def test_a_price_change_applies_to_later_requests_only():
    tenant = make_tenant()
    before = record(tenant, "old", model="gpt-4o-mini", input_tokens=1_000_000, when=NOW)
    ModelPrice.objects.create(
        provider="openai", model="gpt-4o-mini", input_per_million=Decimal("0.30"), output_per_million=Decimal("1.20"),
        effective_from=NOW + timedelta(days=1),
    )  # fmt: skip
    after = record(tenant, "new", model="gpt-4o-mini", input_tokens=1_000_000, when=NOW + timedelta(days=2))
    assert (before["cost"], after["cost"]) == (Decimal("0.15"), Decimal("0.30"))
    assert [r.cost for r in _rows(tenant)] == [Decimal("0.30"), Decimal("0.15")]  # "new", "old": history kept


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_request_are_billed_once():
    tenant = make_tenant()
    barrier = threading.Barrier(16)
    errors = []

    def retry() -> None:
        try:
            barrier.wait()
            usage_record(tenant=tenant, usage=Usage(request_id="same", source="llm", model="gpt-4o", input_tokens=100))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_rows(tenant)) == 1


@pytest.mark.django_db(transaction=True)
def test_rows_wait_in_the_spool_while_postgres_is_down(settings, tmp_path):
    settings.BILLING_SPOOL_DIR = tmp_path / "spool"
    tenant = make_tenant()
    real_host = connection.settings_dict["HOST"]
    connection.close()
    connection.settings_dict["HOST"] = str(tmp_path / "no-postgres-here")  # PostgreSQL is unreachable
    try:
        row = usage_record(tenant=tenant, usage=Usage(request_id="during-outage", source="llm", model="gpt-4o"))
    finally:
        connection.close()
        connection.settings_dict["HOST"] = real_host
    assert row["request_id"] == "during-outage" and len(spooled_files()) == 1
    assert _rows(tenant) == []
    assert spool_flush().written == 1
    assert spool_flush().written == 0 and spooled_files() == []
    assert [r.request_id for r in _rows(tenant)] == ["during-outage"]
