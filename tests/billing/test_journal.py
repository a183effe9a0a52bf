"""The ledger's journal (billing/journal.py): a cache hit answers before its row's commit, and
a worker killed with SIGKILL at any point loses no row of a hit it answered nor bills one twice.

The hits are answered in a process of their own (tests/billing/journal_worker.py) and killed
where the test chooses: while a PostgreSQL row lock held here stalls the commit, or after the
commit but before the journal let go of the rows.
"""

import os
import signal
import subprocess
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from billing import group_commit
from billing.group_commit import ledger as writer
from billing.services import Usage, spool_flush
from billing.spool import spooled_files
from tests.billing.spool_tools import (
    billing_process,
    ledger,
    ledger_row_uncommitted,
    tenant_row_locked,
    wait_until,
    waiting_on_a_lock,
)
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

HITS = 5
# 1,000 + 100 tokens of gpt-4o-mini at the seeded prices ($0.15 / $0.60 per million).
SAVED = Decimal("0.00021")


@pytest.fixture
def spool_dir(settings, tmp_path):
    settings.BILLING_SPOOL_DIR = tmp_path / "spool"
    return settings.BILLING_SPOOL_DIR


def journal_files(spool_dir):
    return sorted(spool_dir.glob("usage-*-journal-*.jsonl"))


def journal_worker(spool_dir, tenant, *flags: str, name: str) -> subprocess.Popen:
    command = ["-m", "tests.billing.journal_worker", str(tenant.pk), str(HITS), *flags]
    return billing_process(command, spool_dir, name=name)


def answers(process: subprocess.Popen) -> list[str]:
    """The lines the worker printed up to ``answered`` (it must get there)."""
    lines = []
    for line in process.stdout:
        if line.strip() == "answered":
            return lines
        lines.append(line.strip())
    raise AssertionError(f"the worker exited first: {process.stderr.read()[-3000:]}")


def killed(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def test_hits_answered_while_their_commit_waits_survive_a_sigkill_and_are_written_once(spool_dir):
    tenant = make_tenant()
    with ledger_row_uncommitted(tenant, "hit-0"):  # the writer's INSERT waits for this transaction
        worker = journal_worker(spool_dir, tenant, "--stalled", name="journal-stalled")
        answered = answers(worker)
        priced = [(request, Decimal(saved)) for request, saved in (line.split() for line in answered)]
        assert priced == [(f"hit-{n}", SAVED) for n in range(HITS)]  # answered, priced, before any commit
        wait_until(lambda: waiting_on_a_lock("journal-stalled"), "the commit to wait on the lock", worker)
        (segment,) = journal_files(spool_dir)
        assert len(segment.read_bytes().splitlines()) == HITS
        # A living worker's journal is its own: no drain takes it, and no row of it is "waiting".
        assert spool_flush().written == 0 and spooled_files() == []
        killed(worker)
    assert spooled_files() == [segment]
    assert ledger(tenant) == []  # the stalled INSERT never got its COMMIT: it died with the worker

    report = spool_flush(wait=True)

    assert (report.written, report.duplicates, report.set_aside) == (HITS, 0, 0)
    assert ledger(tenant) == [(tenant.pk, f"hit-{n}") for n in range(HITS)]
    assert journal_files(spool_dir) == [] and spooled_files() == []
    assert spool_flush().written == 0


def test_a_worker_killed_after_the_commit_but_before_its_journal_let_go_bills_each_hit_once(spool_dir):
    tenant = make_tenant()
    worker = journal_worker(spool_dir, tenant, "--unsettled", name="journal-unsettled")
    assert answers(worker)[-1] == "committed"
    assert ledger(tenant) == [(tenant.pk, f"hit-{n}") for n in range(HITS)]
    killed(worker)

    report = spool_flush(wait=True)

    assert (report.written, report.duplicates) == (0, HITS)  # the journal's replay is absorbed
    assert ledger(tenant) == [(tenant.pk, f"hit-{n}") for n in range(HITS)]
    assert journal_files(spool_dir) == []


def test_a_hit_answers_before_its_commit_and_its_journal_is_emptied_once_the_row_is_in(spool_dir, monkeypatch):
    monkeypatch.setattr(group_commit, "WRITE_TIMEOUT", 600.0)
    tenant = make_tenant()
    usage = Usage(request_id="hit", source="cache_exact", model="gpt-4o-mini", saved_input_tokens=1000,
                  saved_output_tokens=100)  # fmt: skip
    with tenant_row_locked(tenant):
        row = async_to_sync(writer.arecord)(tenant_id=tenant.pk, usage=usage, journaled=True)
        assert row["saved"] == SAVED and row["cost"] == 0
        assert ledger(tenant) == []
        (segment,) = journal_files(spool_dir)
        assert b'"request_id": "hit"' in segment.read_bytes()
    assert writer.wait_idle(timeout=30)
    assert ledger(tenant) == [(tenant.pk, "hit")]
    assert segment.read_bytes() == b""  # the current segment stays, empty, for the next hits


def test_with_the_journal_off_a_hit_waits_for_its_commit(spool_dir, settings):
    settings.BILLING_JOURNAL_HITS = False
    tenant = make_tenant()
    row = async_to_sync(writer.arecord)(tenant_id=tenant.pk, usage=Usage(request_id="hit", source="cache_exact"),
                                        journaled=True)  # fmt: skip
    assert row["request_id"] == "hit" and ledger(tenant) == [(tenant.pk, "hit")]
    assert journal_files(spool_dir) == []


def test_the_journal_follows_the_spool_directory_and_leaves_nothing_in_the_old_one(spool_dir, settings, tmp_path):
    tenant = make_tenant()

    def hit(request_id: str) -> None:
        usage = Usage(request_id=request_id, source="cache_exact")
        async_to_sync(writer.arecord)(tenant_id=tenant.pk, usage=usage, journaled=True)
        assert writer.wait_idle(timeout=30)

    hit("first")
    (old,) = journal_files(spool_dir)
    settings.BILLING_SPOOL_DIR = tmp_path / "elsewhere"
    hit("second")
    assert not old.exists() and len(journal_files(settings.BILLING_SPOOL_DIR)) == 1
    assert ledger(tenant) == [(tenant.pk, "first"), (tenant.pk, "second")]
