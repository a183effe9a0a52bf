"""A local spool for usage rows that PostgreSQL could not take right now.

A process appends each refused row to ``<spool>/usage-<pid>.jsonl``; a drain
(the background retry of any worker, or ``manage.py billing_flush_spool``)
writes the rows back through ``write(row)``, which must be insert-or-ignore on
the ledger's unique key. The files and their locks are in ``spool_files``.

What it guarantees, on a local POSIX file system:

- ``spool(row)`` returns only once the row is on disk (fsync'd).
- A row leaves the spool only once ``write`` took it (inserted, or already in
  the ledger) or, after ``MAX_ATTEMPTS`` failed attempts, into the dead-letter
  file. A file being drained is replaced atomically, and only after the rows
  it sets aside are on disk, so a drain killed at any point loses no row.
- One drain at a time per spool directory (``flock``, which the kernel drops
  when the drainer dies), so the next drain takes over a dead drainer's claim.
- PostgreSQL being unavailable (``write`` raises ``Unavailable``) stops the
  drain and costs no attempt; any other error counts an attempt against that
  row alone, and every other row still goes in.

What it does not guarantee:

- That ``write`` sees a row once: a drain killed between writing a row and
  replacing its file offers it again next time (and a row may then be in the
  dead-letter file twice). The ledger's unique key makes that harmless.
- Order: rows reach the ledger in no particular order.
- Anything on a network file system, or once the host's disk is lost: each
  app host keeps its own spool.
"""

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from billing.spool_files import (
    DEAD_LETTER,
    append,
    claim,
    claimed_files,
    count_rows,
    create,
    drain_lock,
    fresh_files,
    remove_stale_rewrites,
    replace_lines,
    rewriting,
    spool_dir,
)

logger = logging.getLogger("saascore.billing")

# Failed attempts (for a reason of the row itself) before a row is set aside.
MAX_ATTEMPTS = 3
_META = ("_attempts", "_error", "_set_aside_at")


class Unavailable(Exception):
    """Raised by ``write``: PostgreSQL takes no row now (down, read-only, or refusing all rows alike).

    The drain stops and keeps every row; no attempt is counted against any.
    """


@dataclass
class DrainReport:
    """What one drain did, and what it left."""

    written: int = 0
    duplicates: int = 0  # already in the ledger: a replay the unique key absorbed
    set_aside: int = 0  # moved to the dead-letter file by this drain
    requeued: int = 0  # moved back from the dead-letter file by this drain
    waiting: int | None = None  # rows still in the spool afterwards (None: not counted)
    dead_letter: int | None = None  # rows in the dead-letter file afterwards (None: not counted)
    busy_pid: int | None = None  # another drain held the lock (this one did nothing)
    stopped: str = ""  # why the drain stopped early: PostgreSQL took no row


def spool(row: dict) -> None:
    """Append ``row`` to this process's spool file; returns once it is on disk."""
    append(spool_dir() / f"usage-{os.getpid()}.jsonl", [encode_row(row)])


def spooled_files() -> list[Path]:
    """Files with rows waiting: claimed ones (being drained, or left by a dead drainer), then fresh ones."""
    return [*claimed_files(), *fresh_files()]


def drain(
    write: Callable[[dict], bool], *, wait: bool = False, requeue: bool = False, count: bool = True
) -> DrainReport:
    """Offer every spooled row to ``write`` (True: inserted, False: already in the ledger).

    Without ``wait``, a drain that finds another one running does nothing but
    name it (``busy_pid``): that one writes the rows. ``requeue`` first moves
    the dead-letter file's rows back into the spool. ``count`` counts the rows
    left (reading every file: the command wants it, the background retry not).
    """
    report = DrainReport()
    with drain_lock(wait=wait) as holder:
        if holder is not None:
            report.busy_pid = holder
        else:
            remove_stale_rewrites()
            report.requeued = _requeue() if requeue else 0
            for path in _claimable():
                _drain_file(path, write, report)
                if report.stopped:
                    break
        if count:
            report.waiting = sum(count_rows(path) for path in spooled_files())
            report.dead_letter = count_rows(spool_dir() / DEAD_LETTER)
    return report


def _claimable() -> Iterator[Path]:
    """Claimed files first (a dead drainer's), then each fresh file, claimed as its turn comes."""
    yield from claimed_files()
    for path in fresh_files():
        claimed = claim(path)
        if claimed is not None:
            yield claimed


def _drain_file(path: Path, write: Callable[[dict], bool], report: DrainReport) -> None:
    dead: list[bytes] = []
    with path.open("rb") as lines, rewriting(path) as rest:
        for line in lines:
            if not line.strip():
                continue
            line = line if line.endswith(b"\n") else line + b"\n"
            if report.stopped:
                if not rest.changed:
                    return  # nothing taken from this file: it stays as it is
                rest.keep(line)
                continue
            outcome, again = _offer(line, write, report)
            if outcome == "kept":
                rest.keep(line)
                continue
            rest.changed = True
            if outcome == "retry":
                rest.keep(again)
            elif outcome == "aside":
                dead.append(again)
        rest.changed = rest.changed or not rest.kept  # an empty file (a writer died creating it) goes too
        if dead:
            append(spool_dir() / DEAD_LETTER, dead)  # on disk before the file that held them changes


def _offer(line: bytes, write: Callable[[dict], bool], report: DrainReport) -> tuple[str, bytes]:
    """Offer one line to ``write``: ('done' | 'kept' | 'retry' | 'aside', the line to keep or set aside)."""
    row, meta = _decode(line)
    if row is None:
        report.set_aside += 1
        logger.error("an unreadable line of the usage spool was set aside (a writer died mid-line)")
        return "aside", encode_row({"_raw": line.decode("utf-8", "replace").rstrip("\n"), **_aside("not a row", 1)})
    try:
        inserted = write(dict(row))
    except Unavailable as exc:
        report.stopped = str(exc) or type(exc).__name__
        logger.warning("usage spool drain stopped, PostgreSQL unavailable: %s", exc)
        return "kept", line
    except Exception as exc:
        attempts = int(meta.get("_attempts", 0)) + 1
        error = f"{type(exc).__name__}: {exc}".strip()[:500]
        if attempts < MAX_ATTEMPTS:
            return "retry", encode_row({**row, "_attempts": attempts, "_error": error})
        report.set_aside += 1
        logger.error(
            "usage row %s of tenant %s set aside after %d attempts: %s",
            *(row.get("request_id"), row.get("tenant_id"), attempts, error),
        )
        return "aside", encode_row({**row, **_aside(error, attempts)})
    if inserted:
        report.written += 1
    else:
        report.duplicates += 1
    return "done", line


def _requeue() -> int:
    """Move the dead-letter file's rows back into the spool, with fresh attempts (unreadable lines stay)."""
    dead_letter = spool_dir() / DEAD_LETTER
    if not dead_letter.exists():
        return 0
    rows, unreadable = [], []
    for line in dead_letter.read_bytes().splitlines(keepends=True):
        row, _ = _decode(line)
        if row is not None:
            rows.append(encode_row(row))
        elif line.strip():
            unreadable.append(line)
    if rows:
        create(spool_dir() / f"requeued-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.flushing", rows)
        replace_lines(dead_letter, unreadable)
    return len(rows)


def _aside(error: str, attempts: int) -> dict:
    return {"_attempts": attempts, "_error": error, "_set_aside_at": datetime.now(UTC).isoformat()}


def encode_row(row: dict) -> bytes:
    return (json.dumps(row, default=str) + "\n").encode()


def _decode(line: bytes) -> tuple[dict | None, dict]:
    """(row, spool metadata), or (None, {}) for a line that holds no row (torn by a crash, or kept raw)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None, {}
    if not isinstance(data, dict) or "_raw" in data:
        return None, {}
    meta = {key: data.pop(key) for key in _META if key in data}
    return data, meta
