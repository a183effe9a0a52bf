"""Real ways for PostgreSQL to refuse usage rows, and drainers in their own processes."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.db import connection, transaction

from billing.models import UsageRecord
from billing.services import Usage, insert_rows, usage_record
from tenants.scoping import tenant_scope
from tests.serving import ROOT, test_database_url


@contextmanager
def postgres_unreachable(tmp_path: Path) -> Iterator[None]:
    """The application's connection points at a socket where no PostgreSQL listens (down, restarting)."""
    real_host = connection.settings_dict["HOST"]
    connection.close()
    connection.settings_dict["HOST"] = str(tmp_path / "no-postgres-here")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["HOST"] = real_host


@contextmanager
def postgres_read_only() -> Iterator[None]:
    """New sessions are read-only, as on a standby after a failover: writes fail with SQLSTATE 25006."""
    real_options = connection.settings_dict["OPTIONS"]
    options = dict(real_options)
    options["options"] = f"{options.get('options', '')} -c default_transaction_read_only=on".strip()
    connection.close()
    connection.settings_dict["OPTIONS"] = options
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = real_options


def spool_rows(tmp_path: Path, rows: list[tuple[object, str]]) -> None:
    """Record (tenant, request id) rows while PostgreSQL is unreachable: each goes to the spool."""
    with postgres_unreachable(tmp_path):
        for tenant, request_id in rows:
            usage_record(
                tenant=tenant,
                usage=Usage(request_id=request_id, source="llm", model="gpt-4o-mini", input_tokens=1000),
            )


def ledger(*tenants) -> list[tuple[int, str]]:
    """(tenant id, request id) of every ledger row of the tenants, duplicates included."""
    found = []
    for tenant in tenants:
        with tenant_scope(tenant):
            found += list(UsageRecord.objects.for_tenant(tenant).values_list("tenant_id", "request_id"))
    return sorted(found)


def _connect() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"] or None, dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"]
    )


@contextmanager
def tenant_row_locked(tenant) -> Iterator[None]:
    """Hold the tenant's row ``FOR UPDATE``: a usage insert for it waits on its foreign key check until we let go."""
    with _connect() as locker:
        locker.execute("SELECT id FROM tenants_tenant WHERE id = %s FOR UPDATE", [tenant.pk])
        try:
            yield
        finally:
            locker.rollback()


@contextmanager
def ledger_row_uncommitted(tenant, request_id: str) -> Iterator[None]:
    """Insert the tenant's ledger row ``request_id`` in a transaction left open (rolled back at the
    end): another insert of that row waits for this transaction, inside its statement."""
    inserted, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                insert_rows(tenant.pk, [{**Usage(request_id=request_id, source="error").__dict__,
                                         "tenant_id": tenant.pk, "cost": 0, "saved": 0}])  # fmt: skip
                inserted.set()
                done.wait()
                transaction.set_rollback(True)
        except BaseException as exc:
            failure.append(exc)
            inserted.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    inserted.wait()
    try:
        assert not failure, failure
        yield
    finally:
        done.set()
        holder.join()


def waiting_on_a_lock(application_name: str) -> bool:
    """Whether a session of that name waits on a PostgreSQL lock (pg_stat_activity)."""
    with _connect() as observer:
        row = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [application_name],
        ).fetchone()
    return row[0] > 0


def waiting_on_flock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` waits for a ``flock`` on ``path`` (a blocked request in /proc/locks)."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and str(pid) in fields and fields[-3].endswith(f":{inode}"):
            return True
    return False


def billing_process(command: list[str], spool_dir: Path, *, name: str) -> subprocess.Popen:
    """``python <command>`` in its own process on the test database, its PostgreSQL session named
    ``name``, with ``spool_dir`` as its usage spool; stdin, stdout and stderr are pipes."""
    url = test_database_url()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "saascore.settings.local",
        "DATABASE_URL": f"{url}{'&' if '?' in url else '?'}application_name={name}",
        "DATABASE_OWNER_URL": "",
        "BILLING_SPOOL_DIR": str(spool_dir),
        # The test holds row locks to stop the process where it chooses: no timeout may end that wait.
        "DATABASE_STATEMENT_TIMEOUT_MS": "0",
        "DATABASE_LOCK_TIMEOUT_MS": "0",
    }
    return subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, env=environment,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def drainer(spool_dir: Path, *args: str, name: str) -> subprocess.Popen:
    """``manage.py billing_flush_spool --json`` in its own process, its PostgreSQL session named ``name``."""
    return billing_process(["manage.py", "billing_flush_spool", "--json", *args], spool_dir, name=name)


def finished(process: subprocess.Popen) -> dict:
    """The drainer's JSON summary once it exits (it must exit 0)."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def wait_until(
    condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None, timeout: float = 120
) -> None:
    """Poll an observable state (not a guess at timing); fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited first: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
