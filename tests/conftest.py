"""Test set-up: real PostgreSQL (pgvector) and Redis, started here when the URLs are unset.

The test database is created and migrated as the owner role; the tests then run
as the application role, so Row-Level Security applies to them as in production,
and ``unscoped_scope()`` connects as the unscoped role, on its own connection.
That connection is not inside a non-transactional test's transaction: a test
whose unscoped work (the operators' admin, cross-tenant jobs) must see rows the
test made is ``django_db(transaction=True)``.
"""

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import TransactionTestCase


def pytest_configure(config):
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        from saascore.embedded import start_all

        start_all()


_CONNECTION_KEYS = ("USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def _connect_as(role_settings: dict, alias: str = "default") -> None:
    connection = connections[alias]
    connection.close()
    for key in _CONNECTION_KEYS:
        connection.settings_dict[key] = role_settings.get(key, "" if key != "OPTIONS" else {})


# Every database test may use both aliases; `unscoped` mirrors `default`'s test database.
TransactionTestCase.databases = {"default", "unscoped"}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    _connect_as(settings.SAASCORE_DB_OWNER)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    _connect_as(settings.SAASCORE_DB_APP)
    _connect_as(settings.SAASCORE_DB_UNSCOPED, "unscoped")  # a test mirror: the same test database
    yield
    _connect_as(settings.SAASCORE_DB_OWNER)


def ledger_settled() -> None:
    """Wait until this process's ledger writer has written every row handed to it: a cache hit
    answers before its row's commit (billing/journal.py)."""
    from billing.group_commit import ledger

    assert ledger.wait_idle(timeout=30), "the ledger writer did not settle"


@pytest.fixture
def api_client():
    """A DRF test client whose every response comes back once the rows its request handed to
    the ledger's writer are written, so that a test reads the ledger as the response left it."""
    from rest_framework.test import APIClient

    class SettledClient(APIClient):
        def request(self, *args, **kwargs):
            response = super().request(*args, **kwargs)
            ledger_settled()
            return response

    return SettledClient()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    """Before the test's fixtures end (its tables flushed): no row of the test reaches the ledger after."""
    ledger_settled()


@pytest.fixture(autouse=True)
def seed_data(request):
    """Migrations seed the price catalog and the global route table, but a
    transactional test's flush empties every table: put them back for DB tests."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and not {"db", "transactional_db"} & set(request.fixturenames):
        return
    request.getfixturevalue("transactional_db" if marker and marker.kwargs.get("transaction") else "db")
    from ai.router.table import route_rules_seed
    from catalog.seed import catalog_seed
    from tenants.scoping import unscoped_scope

    catalog_seed()  # not tenant-owned: inside the test's transaction, like the test's own rows
    with unscoped_scope():  # global rows: committed on the unscoped connection, idempotent
        route_rules_seed()


DEMO_DOCS = Path(__file__).resolve().parents[1] / "ai" / "rag" / "demo" / "acme_help_centre.jsonl"


@pytest.fixture
def helpdesk(transactional_db):
    """A tenant with the Acme help centre ingested, the starter router examples, and an API key."""
    from ai.rag.services import documents_bulk_upsert
    from ai.router.examples import forget_example_sets
    from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
    from ai.router.table import forget_route_tables
    from tests.factories import make_key, make_tenant

    forget_example_sets()
    forget_route_tables()
    router_examples_import(rows=parse_lines(STARTER_EXAMPLES.read_text().splitlines()), tenant=None)

    def make(slug=None):
        tenant = make_tenant(slug=slug)
        rows = [json.loads(line) for line in DEMO_DOCS.read_text().splitlines()]
        documents_bulk_upsert(tenant=tenant, rows=rows)
        _, key = make_key(tenant)
        return tenant, key

    yield make
    from ai.router.examples import forget_example_sets
    from ai.router.table import forget_route_tables

    forget_example_sets()
    forget_route_tables()
