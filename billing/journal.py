"""The ledger's write-ahead journal: a cache hit answers before its row's commit, and a worker
killed with SIGKILL still loses no row of a request it answered.

A journaled row is appended, priced, to this process's current segment in the usage spool
(``usage-<pid>-journal-<token>.jsonl``) with one ``write(2)`` before the request answers; the
group commit (billing/group_commit.py) then writes it as any other row and *settles* it here
once it is committed (or spooled, fsync'd). A segment whose rows are all settled is emptied
(the current one) or removed (an older one); a segment grows to ``SEGMENT_BYTES`` at most
before the next row opens a new one.

The process holds an ``flock`` on each of its segments for as long as it lives, so the spool's
drain (billing/spool.py) leaves a living process's segments alone and takes a dead one's: its
rows go into the ledger with the same insert-or-ignore on (tenant, request id), so a row that
was committed just before the process died is not billed twice.

What it guarantees: a row ``append`` returned for is in the kernel's page cache, which a
killed process (SIGKILL, an out-of-memory kill, a crash of the interpreter) cannot take back.
What it does not: rows appended in the last moments before the *host* loses power or its
kernel crashes, as they are not fsync'd one by one (an fsync per hit would cost what the
journal saves). ``BILLING_JOURNAL_HITS = False`` makes hits wait for their commit instead.
"""

import fcntl
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from billing.spool import encode_row
from billing.spool_files import JOURNAL, spool_dir, sync_dir

logger = logging.getLogger("saascore.billing")

SEGMENT_BYTES = 1 << 20


@dataclass(eq=False)
class Segment:
    pid: int
    fd: int
    path: Path
    size: int = 0
    unsettled: int = 0


class Journal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Segment | None = None

    def append(self, row: dict) -> Segment:
        """Write ``row`` to the current segment (raises OSError if the spool refuses it)."""
        line = encode_row(row)
        with self._lock:
            segment = self._current
            if (
                segment is None
                or segment.pid != os.getpid()
                or segment.size >= SEGMENT_BYTES
                or segment.path.parent != spool_dir()  # the setting changed (tests do)
            ):
                if segment is not None and segment.pid == os.getpid() and not segment.unsettled:
                    _remove(segment)  # nothing of it to settle: no settling would remove it
                segment = self._current = _open()
            view = memoryview(line)
            while view:
                view = view[os.write(segment.fd, view) :]
            segment.size += len(line)
            segment.unsettled += 1
        return segment

    def settle(self, segment: Segment) -> None:
        """One of the segment's rows is in the ledger, or fsync'd in the spool."""
        with self._lock:
            segment.unsettled -= 1
            if segment.unsettled or segment.pid != os.getpid():
                return
            try:
                if segment is self._current:
                    os.ftruncate(segment.fd, 0)
                    segment.size = 0
                else:
                    _remove(segment)
            except OSError as exc:  # its rows are in the ledger: a drain will find them there
                logger.warning("journal segment %s not emptied: %s", segment.path, exc)

    def close(self) -> None:
        """A stopping process: its current segment goes if every row of it is settled."""
        with self._lock:
            segment, self._current = self._current, None
            if segment is not None and segment.pid == os.getpid() and not segment.unsettled:
                _remove(segment)


def _remove(segment: Segment) -> None:
    """Unlinked while still locked: no drain can take it in between."""
    try:
        segment.path.unlink(missing_ok=True)
    finally:
        os.close(segment.fd)


def _open() -> Segment:
    """A new segment, locked before it takes its name, so that no drain ever claims it while
    this process lives."""
    folder = spool_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"usage-{os.getpid()}-{JOURNAL}-{secrets.token_hex(4)}.jsonl"
    hidden = folder / f".{name}"
    fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(hidden, folder / name)
        sync_dir(folder)
    except BaseException:
        os.close(fd)
        hidden.unlink(missing_ok=True)
        raise
    return Segment(os.getpid(), fd, folder / name)


journal = Journal()
