"""PostgreSQL stalled or gone: every wait is bounded, and the answer is 503 with Retry-After.

A paused server process fires no server-side timeout. These tests pause the very
backend process that serves the request's connection (SIGSTOP), which is what a
stalled server looks like from the client, without stopping the test database
for anyone else.
"""

import os
import signal
import time
from contextlib import contextmanager

import pytest
from django.db import connection

from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # the paused connection is closed: no test transaction on it

BOUND = 1.0


@pytest.fixture
def bounded(settings):
    """The client-side bound of the default connection, made short for the test."""
    connection.close()
    previous = connection.settings_dict["CLIENT_TIMEOUT"]
    connection.settings_dict["CLIENT_TIMEOUT"] = BOUND
    yield
    connection.close()
    connection.settings_dict["CLIENT_TIMEOUT"] = previous


@contextmanager
def paused_backend():
    """Pause the server process behind this thread's connection until the block ends."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_an_api_request_gets_503_with_retry_after_within_the_bound(api_client, bounded):
    _, key = make_key(make_tenant())
    with paused_backend():
        started = time.monotonic()
        response = api_client.get("/api/v1/tenant", **auth(key))
        elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert elapsed < BOUND + 2
    # The connection was given up and replaced: the next request is served.
    assert api_client.get("/api/v1/tenant", **auth(key)).status_code == 200


def test_readiness_answers_within_its_probe_bound_and_names_no_host(client, bounded):
    from saascore.health import PROBE_SECONDS

    with paused_backend():
        started = time.monotonic()
        response = client.get("/health/ready")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["postgres"]["ok"] is False
    assert elapsed < PROBE_SECONDS + 2
    host = connection.settings_dict["HOST"]
    assert host not in response.content.decode() and "/" not in body["postgres"]["error"]


def test_a_row_lock_held_elsewhere_is_503_not_a_hang(api_client, settings):
    """A transaction stuck holding the tenant's budget row: admission waits lock_timeout, then 503."""
    from decimal import Decimal

    from django.db import connections

    from billing.models import SpendCounter, TenantBudget
    from tenants.scoping import tenant_scope

    tenant = make_tenant()
    _, key = make_key(tenant)
    with tenant_scope(tenant):
        TenantBudget.objects.create(tenant=tenant, monthly_spend_limit=Decimal("10"))
        SpendCounter.objects.create(tenant=tenant, period=time.strftime("%Y-%m", time.gmtime()))
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
            cursor.execute("SELECT id FROM billing_spendcounter WHERE tenant_id = %s FOR UPDATE", [tenant.pk])
            started = time.monotonic()
            response = api_client.post(
                "/api/v1/ai/query", {"query": "How do I reset my password?"}, format="json", **auth(key)
            )
            elapsed = time.monotonic() - started
        other.rollback()
    finally:
        other.close()
    assert response.status_code == 503, response.content
    assert elapsed < settings.DATABASE_LOCK_TIMEOUT_MS / 1000 + 2
