"""The API, the dashboard and billing_report agree with a sum over the ledger, to the last decimal;
and a tenant never sees another tenant's billing."""

import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Sum

from billing.models import UsageRecord
from tenants.scoping import tenant_scope
from tenants.services import membership_set
from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db
RANGE = {"from": "2026-11-01", "to": "2026-11-30"}


def ledger_sums(tenant) -> dict:
    with tenant_scope(tenant):
        return UsageRecord.objects.for_tenant(tenant).aggregate(cost=Sum("cost"), saved=Sum("saved"))


def test_api_summary_matches_the_ledger(api_client, ledger):
    tenant = ledger()
    ledger()  # another tenant's usage must not count
    _, key = make_key(tenant)
    body = api_client.get("/api/v1/billing/summary", RANGE, **auth(key)).json()
    sums = ledger_sums(tenant)
    assert Decimal(body["cost"]) == sums["cost"] and Decimal(body["saved"]) == sums["saved"]
    assert body["requests"] == 6 and body["hits"] == 2 and body["misses"] == 3
    assert body["hit_ratio"] == round(2 / 5, 4)
    assert body["by_source"] == {"llm": 3, "cache_exact": 1, "cache_semantic": 1, "error": 1, "embedding": 0}
    assert body["model_mix"] == {"gpt-4o-mini": 1, "gpt-4o": 1, "claude-3-haiku": 1}


def test_api_usage_groups_by_day_model_and_source_and_exports_csv(api_client, ledger):
    tenant = ledger()
    _, key = make_key(tenant)
    by_day = api_client.get("/api/v1/billing/usage", {**RANGE, "group_by": "day"}, **auth(key)).json()
    assert [row["key"] for row in by_day] == ["2026-11-20", "2026-11-21"]
    assert sum(Decimal(r["cost"]) for r in by_day) == ledger_sums(tenant)["cost"]
    by_source = api_client.get("/api/v1/billing/usage", {**RANGE, "group_by": "source"}, **auth(key)).json()
    assert {r["key"]: r["requests"] for r in by_source} == {"cache_exact": 1, "cache_semantic": 1, "error": 1, "llm": 3}
    response = api_client.get("/api/v1/billing/usage.csv", {**RANGE, "group_by": "model"}, **auth(key))
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sum(Decimal(r["cost"]) for r in rows) == ledger_sums(tenant)["cost"]


@pytest.mark.parametrize(
    "params",
    [{"from": "2026-13-01"}, {"from": "2026-11-30", "to": "2026-11-01"}, {"group_by": "week"}, {"to": "yesterday"}],
)
def test_bad_ranges_are_a_400(api_client, params):
    _, key = make_key(make_tenant())
    response = api_client.get("/api/v1/billing/usage", params, **auth(key))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("path", ["/api/v1/billing/summary", "/api/v1/billing/usage", "/api/v1/billing/usage.csv"])
def test_a_range_may_end_on_the_last_day_python_knows(api_client, ledger, path):
    """9999-12-31 has no next day: the range's exclusive end overflowed into a 500."""
    tenant = ledger()
    _, key = make_key(tenant)
    response = api_client.get(path, {"from": "9999-12-30", "to": "9999-12-31"}, **auth(key))
    assert response.status_code == 200, response.content
    if path.endswith("summary"):
        assert response.json()["requests"] == 0


def test_the_csv_endpoint_answers_clients_that_ask_for_csv(api_client, ledger):
    _, key = make_key(ledger())
    response = api_client.get("/api/v1/billing/usage.csv", RANGE, HTTP_ACCEPT="text/csv", **auth(key))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    refused = api_client.get("/api/v1/billing/usage.csv", RANGE, HTTP_ACCEPT="text/html", **auth(key))
    assert refused.status_code == 406 and refused.json()["error"]["code"] == "not_acceptable"


def test_billing_report_matches_the_ledger(ledger):
    tenant = ledger()
    out = io.StringIO()
    call_command("billing_report", tenant=tenant.slug, month="2026-11", json=True, stdout=out)
    report = json.loads(out.getvalue())
    assert Decimal(report["actual_cost"]) == ledger_sums(tenant)["cost"]
    assert Decimal(report["cache_saved"]) == ledger_sums(tenant)["saved"]
    assert report["baseline_model"] == "gpt-4o" and report["queries"] == 6 and report["cache_hits"] == 2
    # every answer's tokens (fresh or cached) at gpt-4o prices: 7200 input, 1800 output
    assert Decimal(report["baseline_cost"]) == Decimal("0.063")
    text = io.StringIO()
    call_command("billing_report", tenant=tenant.slug, month="2026-11", stdout=text)
    assert "Baseline (naive RAG)" in text.getvalue() and "$0.063000" in text.getvalue()


@pytest.mark.django_db(transaction=True)  # memberships are read on the unscoped connection
class TestDashboard:
    def _member(self, client, tenant, role="viewer"):
        user = get_user_model().objects.create_user(f"user-{tenant.slug}", password="pw")
        membership_set(tenant=tenant, user=user, role=role)
        client.force_login(user)
        return user

    def test_a_member_sees_the_ledger_totals(self, client, ledger):
        tenant = ledger()
        self._member(client, tenant)
        page = client.get("/billing/", {"start": "2026-11-01", "end": "2026-11-30"})
        assert page.status_code == 200
        sums = ledger_sums(tenant)
        assert page.context["summary"]["cost"] == sums["cost"]
        html = page.content.decode()
        assert f"${sums['cost']:.6f}" in html and f"${sums['saved']:.6f}" in html
        assert "How do I reset my password?" in html and "<svg" in html

    def test_a_member_cannot_open_another_tenants_dashboard_or_csv(self, client, ledger):
        mine, theirs = ledger(), ledger()
        self._member(client, mine)
        assert client.get("/billing/", {"tenant": theirs.slug}).status_code == 404
        assert client.get("/billing/usage.csv", {"tenant": theirs.slug}).status_code == 404

    def test_operators_pick_any_tenant(self, client, ledger):
        tenant = ledger()
        client.force_login(get_user_model().objects.create_superuser("op", password="pw"))
        page = client.get("/billing/", {"tenant": tenant.slug, "start": "2026-11-01", "end": "2026-11-30"})
        assert page.status_code == 200 and page.context["summary"]["requests"] == 6

    def test_anonymous_users_are_sent_to_log_in(self, client):
        response = client.get("/billing/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

    def test_a_range_ending_on_the_last_day_python_knows(self, client, ledger):
        self._member(client, ledger())
        assert client.get("/billing/", {"start": "9999-12-30", "end": "9999-12-31"}).status_code == 200
        assert client.get("/billing/usage.csv", {"start": "9999-12-30", "end": "9999-12-31"}).status_code == 200

    def test_csv_download(self, client, ledger):
        tenant = ledger()
        self._member(client, tenant)
        response = client.get("/billing/usage.csv", {"start": "2026-11-01", "end": "2026-11-30"})
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [r["day"] for r in rows] == ["2026-11-20", "2026-11-21"]


def test_usage_api_never_shows_another_tenant(api_client, ledger):
    mine, theirs = make_tenant(), ledger()
    _, key = make_key(mine)
    body = api_client.get("/api/v1/billing/summary", RANGE, **auth(key)).json()
    assert body["requests"] == 0 and Decimal(body["cost"]) == 0
    assert theirs.pk != mine.pk and date(2026, 11, 1)
