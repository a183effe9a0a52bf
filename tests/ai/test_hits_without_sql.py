"""A cache hit runs no SQL in steady state: the key, the tenant's settings, its budget, the
router's examples and the prices come from caches; the only statement of a hit is its
ledger row, written by the group-commit thread in a batch, never by the request.

Statements are counted at Django's cursor, in every thread of the process (the request's,
the database pool's, the ledger writer's), against the real PostgreSQL.
"""

import threading

import pytest
from django.db.backends import utils

from billing.models import UsageRecord
from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tenants.services import api_key_revoke
from tests.factories import auth


def only_key(tenant) -> int:
    with tenant_scope(tenant):
        return ApiKey.objects.for_tenant(tenant).get().pk


# Threads that are no request's: the ledger's group commit, and the row cache's background
# refresh of expired entries (a request answers from the entry it has meanwhile).
BACKGROUND = ("ledger-group-commit", "row-cache-refresh")
PASSWORD = "How do I reset my password?"


@pytest.fixture
def statements(monkeypatch):
    """Every SQL statement the process runs while the test records: (thread name, SQL)."""
    seen: list[tuple[str, str]] = []
    execute, executemany = utils.CursorWrapper.execute, utils.CursorWrapper.executemany

    def counted(real):
        def run(self, sql, *args, **kwargs):
            seen.append((threading.current_thread().name, str(sql)))
            return real(self, sql, *args, **kwargs)

        return run

    monkeypatch.setattr(utils.CursorWrapper, "execute", counted(execute))
    monkeypatch.setattr(utils.CursorWrapper, "executemany", counted(executemany))
    return seen


def ask(client, key, query):
    response = client.post("/api/v1/ai/query", {"query": query}, format="json", **auth(key))
    assert response.status_code == 200, response.content
    return response


def test_exact_and_semantic_hits_run_no_sql_but_their_ledger_row(api_client, helpdesk, statements):
    tenant, key = helpdesk()
    ask(api_client, key, PASSWORD)  # the miss: answers and fills the cache
    ask(api_client, key, "how do I reset my password")  # hits that warm the key, settings and verifier caches
    assert ask(api_client, key, "How can I reset my password?")["X-Cache"] == "HIT-SEMANTIC"
    statements.clear()

    exact = ask(api_client, key, "How do I reset my password?")
    semantic = ask(api_client, key, "What's the way to reset my password?")

    assert (exact["X-Cache"], semantic["X-Cache"]) == ("HIT-EXACT", "HIT-SEMANTIC")
    by_request = [sql for thread, sql in statements if not thread.startswith(BACKGROUND)]
    assert by_request == [], by_request
    ledger_writes = [sql for thread, sql in statements if thread.startswith("ledger-group-commit")]
    assert ledger_writes and all("billing_usagerecord" in sql or sql.startswith(("SET", "SAVEPOINT", "RELEASE"))
                                 or "set_config" in sql for sql in ledger_writes), ledger_writes  # fmt: skip
    with tenant_scope(tenant):
        rows = UsageRecord.objects.for_tenant(tenant)
        ids = {exact.json()["request_id"], semantic.json()["request_id"]}
        assert rows.filter(request_id__in=ids).count() == 2  # written, one per request


def test_a_revoked_key_is_refused_by_the_next_request_of_this_process(api_client, helpdesk):
    tenant, key = helpdesk()
    ask(api_client, key, PASSWORD)
    api_key_revoke(tenant=tenant, key_id=only_key(tenant))
    refused = api_client.post("/api/v1/ai/query", {"query": PASSWORD}, format="json", **auth(key))
    assert refused.status_code == 401, refused.content


def chat(client, key, question, *, model="auto"):
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    response = client.post("/v1/chat/completions", body, format="json", **auth(key))
    assert response.status_code == 200, response.content
    return response


def test_openai_compatible_hits_run_no_sql_but_their_ledger_row(api_client, helpdesk, statements):
    """The same on /v1/chat/completions, "auto" and a named model (its route from the row cache)."""
    _, key = helpdesk()
    chat(api_client, key, PASSWORD)
    chat(api_client, key, PASSWORD, model="gpt-4o")  # a named model's own scope: a miss
    chat(api_client, key, "how do I reset my password")
    statements.clear()

    auto = chat(api_client, key, "How do I reset my password?")
    named = chat(api_client, key, "How do I reset my password?", model="gpt-4o")
    streamed = api_client.post(
        "/v1/chat/completions",
        {"model": "auto", "stream": True, "messages": [{"role": "user", "content": PASSWORD}]},
        format="json", **auth(key),
    )  # fmt: skip

    assert (auto["x-saascore-cache"], named["x-saascore-cache"], streamed["x-saascore-cache"]) == ("HIT-EXACT",) * 3
    by_request = [sql for thread, sql in statements if not thread.startswith(BACKGROUND)]
    assert by_request == [], by_request
