"""A cache invalidation is never lost (issue 12, item 10; ai/cache/invalidation.py).

When Redis does not take the generation bump of a committed change (paused with the
breaker open, refusing writes), the change's own transaction has left a pending
invalidation in PostgreSQL: the process holds the tenant (no answer from the cache),
and a sweep applies it once Redis takes writes again. Real PostgreSQL, real Redis
servers of the tests' own (paused with SIGSTOP, or refusing writes for memory), the
real embedder and pipeline.
"""

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import redis
from django.contrib.auth import get_user_model

from ai.cache import get_cache, invalidation
from ai.cache.invalidation import FlushOutcome, cache_flush, invalidation_record, invalidations_sweep
from ai.cache.keys import generation_key
from ai.cache.models import PendingInvalidation
from ai.cache.pending import PENDING
from ai.cache.sweeper import sweeper_stop
from ai.rag.services import document_update, documents_bulk_upsert
from ai.tenant_settings.models import TenantAISettings
from saascore.redis.breaker import BreakerState
from tenants.scoping import tenant_scope, unscoped_scope
from tests.ai.rag.test_document_changes import NEW_TEXT, ask, assert_nothing_of, the_document
from tests.billing.spool_tools import postgres_unreachable
from tests.factories import auth, make_tenant
from tests.redis_servers import paused, private_redis
from tests.serving import ROOT
from tests.serving import test_database_url as database_url
from tests.tasks import DATABASE_TASKS

pytestmark = pytest.mark.django_db(transaction=True)

HITS = ("HIT-EXACT", "HIT-SEMANTIC")


@pytest.fixture
def own_redis(tmp_path, settings):
    """A Redis of the test's own behind the process's cache (``get_cache()``)."""
    with private_redis(tmp_path, search=False) as server:
        settings.REDIS_URL = server.url
        yield server


@pytest.fixture
def sweeper(settings):
    """This process's background sweeper, with an interval too long to matter: it sweeps
    when it starts and when the breaker closes. Stopped after the test."""
    settings.CACHE_INVALIDATION_SWEEP_SECONDS = 600
    yield
    sweeper_stop()


def served_env(server) -> dict:
    """Another process of the project on the test database and ``server``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "saascore.settings.local",
        "DATABASE_URL": database_url(),
        "DATABASE_OWNER_URL": "",
        "DATABASE_UNSCOPED_URL": database_url("unscoped"),
        "REDIS_URL": server.url,
    }


def generation(server, tenant) -> bytes | None:
    return redis.Redis.from_url(server.url).get(generation_key(tenant.pk))


def pending_rows(tenant) -> int:
    with tenant_scope(tenant):
        return PendingInvalidation.objects.for_tenant(tenant).count()


def patch(api_client, key, document, content=NEW_TEXT) -> None:
    response = api_client.patch(f"/api/v1/documents/{document.pk}", {"content": content}, format="json", **auth(key))
    assert response.status_code == 200, response.content


def old_answer_cached(api_client, key) -> str:
    """Ask twice: answered from the document's current text, then served from the cache."""
    answer = ask(api_client, key).json()["response"]
    assert "Forgot password" in answer
    again = ask(api_client, key)
    assert again["X-Cache"] == "HIT-EXACT" and again.json()["response"] == answer
    return answer


@contextmanager
def refusing_writes(server):
    """Redis answers reads and refuses every write (out of memory, nothing it may evict)."""
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        yield
    finally:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "volatile-lru")


def test_a_change_committed_while_redis_is_paused_is_applied_once_it_answers(api_client, helpdesk, own_redis, sweeper):
    (tenant, key), (_, other_key) = helpdesk(), helpdesk()
    document = the_document(tenant)
    old_answer_cached(api_client, key)
    before = generation(own_redis, tenant)

    with paused(own_redis):
        cache = get_cache()
        for _ in range(10):  # traffic meets the stalled Redis until the breaker opens
            ask(api_client, key)
            if cache.breaker.state is BreakerState.OPEN:
                break
        assert cache.breaker.state is BreakerState.OPEN
        patch(api_client, key, document)  # commits; the breaker sends no bump to Redis
        assert pending_rows(tenant) >= 1 and tenant.pk in PENDING

    # Redis answers again, with its data: the old answer is still stored under the old
    # generation. Requests go on (the held tenant's make no Redis call; another tenant's
    # do) while the breaker cools down and closes on a probe; the close wakes the sweeper,
    # which applies the invalidation.
    deadline = time.monotonic() + 30
    while pending_rows(tenant):
        assert time.monotonic() < deadline, "the pending invalidation was not applied after Redis came back"
        answered = ask(api_client, key)
        assert answered["X-Cache"] not in HITS
        assert_nothing_of(document.content, answered)
        ask(api_client, other_key)
    assert cache.breaker.state is BreakerState.CLOSED
    assert generation(own_redis, tenant) != before and tenant.pk not in PENDING

    fresh = ask(api_client, key)
    assert_nothing_of(document.content, fresh)
    assert "quokka desk" in fresh.json()["response"]
    again = ask(api_client, key)  # the tenant is answered from the cache again
    assert again["X-Cache"] == "HIT-EXACT" and "quokka desk" in again.json()["response"]


def test_a_tenants_pending_invalidation_never_touches_another_tenants_cache(api_client, helpdesk, own_redis):
    (a, key_a), (b, key_b) = helpdesk(), helpdesk()
    document_a = the_document(a)
    old_answer_cached(api_client, key_a)
    answer_b = old_answer_cached(api_client, key_b)
    generation_b = generation(own_redis, b)

    with refusing_writes(own_redis):
        patch(api_client, key_a, document_a)  # Redis refuses A's bump: pending, A held
        assert pending_rows(a) >= 1 and a.pk in PENDING
        assert get_cache().breaker.state is BreakerState.CLOSED  # a refusal is not an outage
        served_b = ask(api_client, key_b)  # B is neither held nor invalidated: its answer serves
        assert served_b["X-Cache"] == "HIT-EXACT" and served_b.json()["response"] == answer_b
        served_a = ask(api_client, key_a)  # A's old entry is still in Redis, and not served
        assert served_a["X-Cache"] not in HITS
        assert_nothing_of(document_a.content, served_a)
        assert invalidations_sweep().waiting == [a.pk]  # still refused: still pending

    sweep = invalidations_sweep()
    assert sweep.applied == [a.pk] and not sweep.waiting
    assert pending_rows(a) == 0 and pending_rows(b) == 0
    assert generation(own_redis, b) == generation_b and b.pk not in PENDING
    served_b = ask(api_client, key_b)
    assert served_b["X-Cache"] == "HIT-EXACT" and served_b.json()["response"] == answer_b
    assert_nothing_of(document_a.content, ask(api_client, key_a))


def test_a_process_killed_between_the_commit_and_its_hook_leaves_the_invalidation_to_the_sweep(
    api_client, helpdesk, own_redis
):
    """The pending row is written in the change's own transaction: a process that dies right
    after COMMIT, before any commit hook ran, still leaves the obligation behind."""
    tenant, key = helpdesk()
    document = the_document(tenant)
    old_answer_cached(api_client, key)
    before = generation(own_redis, tenant)
    script = (
        "import os; from django.db import transaction; from ai.rag.services import document_update\n"
        "from tenants.scoping import tenant_scope\n"
        f"with tenant_scope({tenant.pk}):\n"
        "    transaction.on_commit(lambda: os._exit(9))  # registered first: runs first, kills the process\n"
        f"    document_update(tenant={tenant.pk}, document_id={document.pk}, content={NEW_TEXT!r})\n"
    )
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=served_env(own_redis), capture_output=True, timeout=120,
    )  # fmt: skip
    assert died.returncode == 9, died.stderr.decode()[-2000:]
    assert "quokka desk" in the_document(tenant).content  # the change committed...
    assert generation(own_redis, tenant) == before  # ...and no hook of that process ran
    assert pending_rows(tenant) == 1

    assert invalidations_sweep().applied == [tenant.pk]  # any process's sweep
    assert pending_rows(tenant) == 0 and generation(own_redis, tenant) != before
    assert_nothing_of(document.content, ask(api_client, key))


def test_a_change_writes_one_pending_row_in_its_own_transaction_and_a_rollback_none(helpdesk, own_redis, settings):
    settings.TASKS = DATABASE_TASKS  # ingestion stays queued: only the changes' own invalidations
    tenant, _ = helpdesk()
    before = generation(own_redis, tenant)
    rows = [{"title": f"Note {n}", "content": f"Note number {n}."} for n in range(3)]

    with tenant_scope(tenant):
        documents_bulk_upsert(tenant=tenant, rows=rows)
        document_update(tenant=tenant, document_id=the_document(tenant).pk, content=NEW_TEXT)
        assert pending_rows(tenant) == 1  # one row for the tenant's whole transaction, before the commit
        assert generation(own_redis, tenant) == before  # nothing moves before the commit
    assert pending_rows(tenant) == 0 and generation(own_redis, tenant) != before  # applied after it

    before = generation(own_redis, tenant)
    with pytest.raises(RuntimeError), tenant_scope(tenant):
        document_update(tenant=tenant, document_id=the_document(tenant).pk, content="Rolled back.")
        raise RuntimeError("the change is rolled back")
    assert pending_rows(tenant) == 0 and generation(own_redis, tenant) == before and tenant.pk not in PENDING


def test_deleting_a_tenant_with_documents_and_settings_leaves_no_invalidation_behind(helpdesk, own_redis):
    tenant, _ = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant)
    with unscoped_scope():
        type(tenant).objects.filter(pk=tenant.pk).delete()  # its documents' and settings' rows go too
        assert PendingInvalidation.objects.unscoped().filter(tenant_id=tenant.pk).count() == 1  # written, once
    with unscoped_scope():
        assert not PendingInvalidation.objects.unscoped().exists()  # applied after the commit


@pytest.fixture
def operator(client):
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    return client


def test_a_flush_redis_refuses_is_not_reported_as_done_and_is_applied_when_it_answers(
    api_client, operator, helpdesk, own_redis
):
    tenant, key = helpdesk()
    old_answer_cached(api_client, key)
    with tenant_scope(tenant):
        settings_row = TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant)
    old_answer_cached(api_client, key)  # the settings' own invalidation applied; cached again
    before = generation(own_redis, tenant)

    with refusing_writes(own_redis):
        response = operator.post(f"/admin/ai/tenantaisettings/{settings_row.pk}/flush/", follow=True)
        shown = [str(message) for message in response.context["messages"]]
        assert len(shown) == 1 and "is NOT flushed yet" in shown[0], shown
        page = response.content.decode()
        assert 'data-field="invalidation-pending">since' in page
        assert pending_rows(tenant) == 1 and tenant.pk in PENDING
        assert ask(api_client, key)["X-Cache"] not in HITS

    assert invalidations_sweep().applied == [tenant.pk]
    assert generation(own_redis, tenant) != before and pending_rows(tenant) == 0
    assert ask(api_client, key)["X-Cache"] == "MISS"  # the flush happened: the old entry is gone
    page = operator.get(f"/admin/ai/tenantaisettings/{settings_row.pk}/change/").content.decode()
    assert 'data-field="invalidation-pending">none' in page


def test_the_flush_still_says_done_when_redis_takes_it(operator, helpdesk, own_redis):
    tenant, _ = helpdesk()
    with tenant_scope(tenant):
        settings_row = TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant)
    before = generation(own_redis, tenant)
    response = operator.post(f"/admin/ai/tenantaisettings/{settings_row.pk}/flush/", follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert shown == ["Flushed the cache of 1 tenant(s): no earlier answer is served."]
    assert generation(own_redis, tenant) != before and pending_rows(tenant) == 0


def test_pending_holds_are_released_only_by_a_bump_that_began_after_them():
    tenant = make_tenant()
    PENDING.hold(tenant.pk)
    mark = PENDING.mark()  # a bump begins...
    PENDING.hold(tenant.pk)  # ...a newer change is held meanwhile...
    PENDING.release([tenant.pk], mark=mark)  # ...so that bump does not release it
    assert tenant.pk in PENDING
    invalidations_sweep()  # nothing in PostgreSQL: the hold predates the read, so it is settled
    assert tenant.pk not in PENDING


def test_db_worker_applies_pending_invalidations_when_it_starts(helpdesk, own_redis, settings, tmp_path):
    tenant, _ = helpdesk()
    before = generation(own_redis, tenant)
    settings.REDIS_URL = f"unix://{tmp_path}/nothing-answers-here.sock"  # this process cannot reach Redis
    document_update(tenant=tenant, document_id=the_document(tenant).pk, content=NEW_TEXT)
    assert pending_rows(tenant) >= 1

    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--queue-name", "default"],
        cwd=ROOT, env=served_env(own_redis), capture_output=True, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr.decode()[-2000:]
    assert pending_rows(tenant) == 0 and generation(own_redis, tenant) != before


def test_a_held_tenant_is_released_by_a_bump_while_postgresql_is_unreachable(api_client, helpdesk, own_redis, tmp_path):
    """Redis refused the bump and is back, PostgreSQL is down: this process knows whom it holds,
    bumps them, and answers them from the cache again; the row is applied later, once more."""
    tenant, key = helpdesk()
    document = the_document(tenant)
    old_answer_cached(api_client, key)
    with refusing_writes(own_redis):
        patch(api_client, key, document)
    assert tenant.pk in PENDING
    held_at = generation(own_redis, tenant)

    with postgres_unreachable(tmp_path):
        sweep = invalidations_sweep()
        assert sweep.error and tenant.pk in sweep.applied
    assert tenant.pk not in PENDING and generation(own_redis, tenant) != held_at
    assert pending_rows(tenant) >= 1  # still there: PostgreSQL could not be told
    assert_nothing_of(document.content, ask(api_client, key))
    assert ask(api_client, key)["X-Cache"] == "HIT-EXACT"  # answered from the cache again, new text
    assert invalidations_sweep().applied == [tenant.pk] and pending_rows(tenant) == 0


def test_a_sweep_that_reads_only_part_of_the_rows_keeps_the_holds_it_did_not_read(own_redis, monkeypatch):
    first, last = make_tenant(), make_tenant()
    with refusing_writes(own_redis):
        for tenant in (first, first, last):  # three transactions, three rows; the last is the newest
            with tenant_scope(tenant):
                invalidation_record(tenant_id=tenant.pk, using="default")
    assert {first.pk, last.pk} <= PENDING.held()
    monkeypatch.setattr(invalidation, "SWEEP_BATCH", 2)  # a sweep reads the oldest two rows only

    assert invalidations_sweep().applied == [first.pk]
    assert last.pk in PENDING and pending_rows(last) == 1  # not read, so not settled
    assert invalidations_sweep().applied == [last.pk]
    assert last.pk not in PENDING and pending_rows(last) == 0


def test_a_flush_neither_redis_nor_postgresql_takes_is_reported_as_failed(own_redis, tmp_path):
    tenant = make_tenant()
    with refusing_writes(own_redis), postgres_unreachable(tmp_path):
        assert cache_flush(tenant_id=tenant.pk) is FlushOutcome.FAILED
    assert pending_rows(tenant) == 0
    assert cache_flush(tenant_id=tenant.pk) is FlushOutcome.FLUSHED
