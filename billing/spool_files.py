"""The usage spool's files and locks (billing/spool.py says what they guarantee).

In the spool directory (``settings.BILLING_SPOOL_DIR``, local to the host):

- ``usage-<pid>.jsonl``: fresh rows, appended by one process under ``flock``;
- ``usage-<pid>-journal-<token>.jsonl``: a process's journal of rows not yet committed
  (billing/journal.py), held under ``flock`` for the process's life: fresh rows once it is dead;
- ``*.flushing``: files a drain claimed (renamed), still holding rows;
- ``dead-letter.jsonl``: rows set aside for an operator;
- ``.drain.lock``: held (``flock``) by the one running drain, with its pid;
- ``*.tmp``: a rewrite in progress; a stale one is redundant and removed.

``flock`` locks belong to an open file, so they exclude threads of one process
as well as processes, and the kernel releases them when the holder dies.
"""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

DEAD_LETTER = "dead-letter.jsonl"
JOURNAL = "journal"  # usage-<pid>-journal-<token>.jsonl
_LOCK = ".drain.lock"


def spool_dir() -> Path:
    return Path(settings.BILLING_SPOOL_DIR)


def fresh_files() -> list[Path]:
    """Files of fresh rows, but the journals a living process holds (their rows are its own)."""
    folder = spool_dir()
    if not folder.exists():
        return []
    return sorted(path for path in folder.glob("usage-*.jsonl") if not _held_journal(path))


def _held_journal(path: Path) -> bool:
    if f"-{JOURNAL}-" not in path.name:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # emptied and removed meanwhile: nothing to drain
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def claimed_files() -> list[Path]:
    folder = spool_dir()
    return sorted(folder.glob("*.flushing")) if folder.exists() else []


def append(path: Path, lines: list[bytes]) -> None:
    """Append whole lines to ``path`` and fsync, unless a drain claims the file meanwhile (then a new one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_at(fd, path):  # not renamed away by a drain while this process waited for the lock
                _write_lines(fd, path, lines)
                return
        finally:
            os.close(fd)


def _write_lines(fd: int, path: Path, lines: list[bytes]) -> None:
    size = os.fstat(fd).st_size
    data = b"".join(lines)
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data  # a writer died mid-line: never glue a row onto its torn line
    while data:
        data = data[os.write(fd, data) :]
    os.fsync(fd)
    if not size:
        sync_dir(path.parent)  # a new file: make its name durable too


def create(path: Path, lines: list[bytes]) -> None:
    """Make ``path`` hold exactly ``lines``, atomically: a crash leaves the old file or the new one."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_dir(path.parent)


class Rewrite:
    """What stays of a file being drained, streamed to its replacement."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.kept, self.changed = handle, 0, False

    def keep(self, line: bytes) -> None:
        self.handle.write(line)
        self.kept += 1


@contextmanager
def rewriting(path: Path) -> Iterator[Rewrite]:
    """Stream the lines that stay into ``path.tmp``; if the block set ``changed``, they replace
    ``path`` atomically (or it goes, when none stayed). Otherwise, or on an error, ``path`` stays."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        rewrite = Rewrite(handle)
        try:
            yield rewrite
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    if not rewrite.changed:
        temporary.unlink()
    elif rewrite.kept:
        os.replace(temporary, path)
        sync_dir(path.parent)
    else:
        temporary.unlink()
        replace_lines(path, [])


def replace_lines(path: Path, lines: list[bytes]) -> None:
    """``create`` or, with nothing left, remove ``path``."""
    if lines:
        create(path, lines)
    else:
        path.unlink(missing_ok=True)
        sync_dir(path.parent)


def claim(path: Path) -> Path | None:
    """Rename a fresh file to ``*.flushing`` once no writer is appending to it; None if it is busy or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _is_at(fd, path):
            return None
        claimed = path.with_name(f"{path.stem}.{time.time_ns()}.flushing")
        os.rename(path, claimed)
        return claimed
    except BlockingIOError:
        return None  # a writer is stopped mid-append: its file waits for the next drain
    finally:
        os.close(fd)


def count_rows(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return 0


def remove_stale_rewrites() -> None:
    """Rewrites a dead drain left half done: the file they were to replace still holds every row."""
    for temporary in spool_dir().glob("*.tmp"):
        temporary.unlink(missing_ok=True)


@contextmanager
def drain_lock(*, wait: bool) -> Iterator[int | None]:
    """Hold the spool's drain lock: yields None when held, else the pid of the drain that holds it."""
    folder = spool_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield _holder(fd)
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield None
    finally:
        os.close(fd)


def _holder(fd: int) -> int:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else 0


def _is_at(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def sync_dir(folder: Path) -> None:
    """Make a created, renamed or removed name durable, not only the file's content."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
