"""The usage spool (billing/spool.py): nothing lost, nothing counted twice.

PostgreSQL refuses rows for real (no server on the socket, or read-only
sessions); drainers run as ``manage.py billing_flush_spool`` in their own
processes, and a PostgreSQL row lock held here stops one mid-drain on a row we
choose, so a SIGKILL lands there every time.
"""

import json
import os
import signal
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DataError
from prometheus_client import REGISTRY

from billing.models import UsageRecord
from billing.services import Usage, spool_flush, usage_record
from billing.spool import MAX_ATTEMPTS, spool, spooled_files
from billing.spool_files import DEAD_LETTER
from catalog.models import ModelPrice
from tenants.models import Tenant
from tenants.scoping import tenant_scope, unscoped_scope
from tests.billing.spool_tools import (
    drainer,
    finished,
    ledger,
    postgres_read_only,
    postgres_unreachable,
    spool_rows,
    tenant_row_locked,
    wait_until,
    waiting_on_a_lock,
    waiting_on_flock,
)
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spool_dir(settings, tmp_path):
    settings.BILLING_SPOOL_DIR = tmp_path / "spool"
    return settings.BILLING_SPOOL_DIR


def _spooled(event: str) -> float:
    return REGISTRY.get_sample_value("saascore_usage_spool_rows_total", {"event": event}) or 0.0


def test_a_drainer_killed_mid_drain_loses_nothing_and_counts_nothing_twice(spool_dir, tmp_path):
    first, second = make_tenant(), make_tenant()
    rows = [(first, f"a{n}") for n in range(6)] + [(second, f"b{n}") for n in range(6)]
    spool_rows(tmp_path, rows)
    with tenant_row_locked(second):
        process = drainer(spool_dir, name="spool-drainer-killed")
        wait_until(lambda: waiting_on_a_lock("spool-drainer-killed"), "the drainer blocks on b0's commit", process)
        assert [request for _, request in ledger(first, second)] == [f"a{n}" for n in range(6)]  # mid-drain
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    assert sum(1 for _ in spooled_files()) == 1  # its claim is still on disk

    report = spool_flush()

    # The drainer died in b0's COMMIT (Django's foreign keys are checked at commit), and PostgreSQL
    # finished that commit once the lock went: the replay finds a0-a5 and b0 there, and counts them once.
    assert (report.written, report.duplicates, report.set_aside, report.waiting) == (5, 7, 0, 0)
    assert ledger(first, second) == sorted((tenant.pk, request) for tenant, request in rows)  # each once
    with tenant_scope(second):
        assert {r.cost for r in UsageRecord.objects.for_tenant(second)} == {Decimal("0.00015")}  # priced when written
    assert spooled_files() == []


def test_two_drainers_at_once_write_each_row_once(spool_dir, tmp_path):
    first, second = make_tenant(), make_tenant()
    spool_rows(tmp_path, [(first, "a0"), (first, "a1"), (first, "a2"), (second, "b0"), (second, "b1"), (second, "b2")])
    with tenant_row_locked(second):
        one = drainer(spool_dir, name="spool-drainer-one")
        wait_until(lambda: waiting_on_a_lock("spool-drainer-one"), "drainer one blocks mid-drain", one)
        spool_rows(tmp_path, [(first, "a3"), (first, "a4"), (first, "a5")])  # a new file, while one drains

        busy = finished(drainer(spool_dir, name="spool-drainer-two"))
        assert busy["busy_pid"] == one.pid and busy["written"] == busy["duplicates"] == 0
        three = drainer(spool_dir, "--wait", name="spool-drainer-three")
        lock = spool_dir / ".drain.lock"
        wait_until(lambda: waiting_on_flock(three.pid, lock), "drainer three waits for the drain lock", three)

    first_report, third_report = finished(one), finished(three)
    assert (first_report["written"], first_report["duplicates"]) == (6, 0)
    assert (third_report["written"], third_report["duplicates"], third_report["waiting"]) == (3, 0, 0)
    assert ledger(first, second) == sorted(
        [(first.pk, f"a{n}") for n in range(6)] + [(second.pk, f"b{n}") for n in range(3)]
    )
    assert spooled_files() == []


def _spool_in_another_process(tenant, request_id: str) -> None:
    """A second worker's spool file: a forked child records a row while PostgreSQL is unreachable."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            usage_record(tenant=tenant, usage=Usage(request_id=request_id, source="llm", model="gpt-4o"))
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_a_poison_row_is_set_aside_and_every_other_row_goes_in(spool_dir, tmp_path):
    tenant, doomed = make_tenant(), make_tenant(slug="doomed")
    doomed_pk = doomed.pk
    spool_rows(tmp_path, [(tenant, "g1"), (doomed, "poison"), (tenant, "g2")])
    with postgres_unreachable(tmp_path):
        _spool_in_another_process(tenant, "g3")
    assert len(spooled_files()) == 2
    with unscoped_scope():
        Tenant.objects.filter(pk=doomed_pk).delete()  # its row now breaks the ledger's foreign key
    set_aside_before = _spooled("set_aside")

    reports = [spool_flush() for _ in range(MAX_ATTEMPTS)]

    assert [r.written for r in reports] == [3, 0, 0]
    assert [r.waiting for r in reports] == [1, 1, 0]
    assert [r.set_aside for r in reports] == [0, 0, 1] and reports[-1].dead_letter == 1
    assert [request for _, request in ledger(tenant)] == ["g1", "g2", "g3"]
    assert spooled_files() == []
    (line,) = (spool_dir / DEAD_LETTER).read_text().splitlines()
    aside = json.loads(line)
    assert aside["request_id"] == "poison" and aside["tenant_id"] == doomed_pk
    assert aside["_attempts"] == MAX_ATTEMPTS and "foreign key" in aside["_error"]
    assert _spooled("set_aside") == set_aside_before + 1

    # The operator restores the tenant, then puts the row back: it goes in once.
    Tenant.objects.create(pk=doomed_pk, slug="doomed", name="Doomed")
    requeued = spool_flush(requeue=True)
    assert (requeued.requeued, requeued.written, requeued.dead_letter, requeued.waiting) == (1, 1, 0, 0)
    assert [request for _, request in ledger(Tenant.objects.get(pk=doomed_pk))] == ["poison"]


def test_a_read_only_postgres_spools_the_row_and_a_bad_row_is_not_swallowed(spool_dir):
    tenant = make_tenant()
    with postgres_read_only():
        row = usage_record(tenant=tenant, usage=Usage(request_id="after-failover", source="llm", model="gpt-4o"))
        with pytest.raises(DataError):  # a bug (a request id longer than the column), not an outage
            usage_record(tenant=tenant, usage=Usage(request_id="x" * 65, source="llm"))
    assert row["request_id"] == "after-failover" and len(spooled_files()) == 1
    assert ledger(tenant) == []
    assert spool_flush().written == 1
    assert ledger(tenant) == [(tenant.pk, "after-failover")]


def test_a_row_postgres_could_not_even_price_is_priced_when_written(spool_dir, tmp_path):
    tenant = make_tenant()
    ModelPrice.objects.create(
        provider="openai", model="fresh-model", input_per_million=Decimal("2"), output_per_million=Decimal("8")
    )
    usage = Usage(request_id="unpriced", source="llm", model="fresh-model", input_tokens=1000, output_tokens=500)
    with postgres_unreachable(tmp_path):
        row = usage_record(tenant=tenant, usage=usage)  # the price was never read: PostgreSQL is gone
    assert row["cost"] == 0 and len(spooled_files()) == 1
    assert spool_flush().written == 1
    with tenant_scope(tenant):
        (stored,) = UsageRecord.objects.for_tenant(tenant)
    assert stored.cost == Decimal("0.006")  # 1000 x $2/M + 500 x $8/M, at the row's own time


def test_a_torn_line_left_by_a_dead_writer_neither_blocks_nor_swallows_the_next_row(spool_dir, tmp_path):
    tenant = make_tenant()
    spool_rows(tmp_path, [(tenant, "before")])
    (path,) = spooled_files()
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "torn", "tena')  # a writer killed mid-append
    spool_rows(tmp_path, [(tenant, "after")])
    (spool_dir / "usage-4194304.jsonl").touch()  # a writer killed as it created its file

    report = spool_flush()

    assert (report.written, report.set_aside, report.waiting) == (2, 1, 0) and spooled_files() == []
    assert [request for _, request in ledger(tenant)] == ["after", "before"]
    assert json.loads((spool_dir / DEAD_LETTER).read_text())["_raw"] == '{"request_id": "torn", "tena'


def test_the_command_reports_what_it_did(spool_dir, tmp_path, capsys):
    tenant = make_tenant()
    spool_rows(tmp_path, [(tenant, "r1"), (tenant, "r2")])
    with tenant_scope(tenant):
        UsageRecord.objects.create(tenant=tenant, request_id="r1", source="llm")  # already in the ledger
    call_command("billing_flush_spool")
    out = capsys.readouterr().out
    assert "written             1" in out and "duplicates ignored  1" in out
    assert "set aside           0" in out and "still waiting       0" in out

    spool_rows(tmp_path, [(tenant, "r3")])
    with postgres_unreachable(tmp_path), pytest.raises(Exception, match="PostgreSQL refused the rows"):
        call_command("billing_flush_spool", "--json")
    assert json.loads(capsys.readouterr().out)["waiting"] == 1


def test_a_worker_whose_insert_succeeds_drains_what_a_dead_worker_left(spool_dir, tmp_path, settings):
    tenant = make_tenant()
    with postgres_unreachable(tmp_path):
        _spool_in_another_process(tenant, "left-by-a-dead-worker")
    settings.BILLING_SPOOL_RETRY_SECONDS = 60.0  # looks at the spool once a minute at most

    usage_record(tenant=tenant, usage=Usage(request_id="now", source="llm"))

    wait_until(lambda: spooled_files() == [], "the background drain empties the spool")
    assert [request for _, request in ledger(tenant)] == ["left-by-a-dead-worker", "now"]


def test_spool_files_are_private(spool_dir, tmp_path):
    spool({"request_id": "r", "tenant_id": 1})
    (path,) = spooled_files()
    assert path.stat().st_mode & 0o077 == 0 and spool_dir.stat().st_mode & 0o077 == 0


def test_a_row_spooled_before_the_end_user_column_is_written(spool_dir):
    """A spool outlives a deploy: a row written by the previous release has no ``end_user``."""
    tenant = make_tenant()
    old = {
        "request_id": "before-end-user", "source": "llm", "model": "gpt-4o-mini", "input_tokens": 10,
        "output_tokens": 5, "router_model": "", "router_input_tokens": 0, "router_output_tokens": 0,
        "embedding_model": "", "embedding_tokens": 0, "saved_input_tokens": 0, "saved_output_tokens": 0,
        "cached_question": "", "tenant_id": tenant.pk, "created_at": datetime.now(UTC), "cost": None, "saved": None,
    }  # fmt: skip
    spool(old)
    assert spool_flush().written == 1
    with tenant_scope(tenant):
        (stored,) = UsageRecord.objects.for_tenant(tenant)
    assert stored.end_user == "" and stored.cost > 0
