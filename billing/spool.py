"""A local spool for usage rows that PostgreSQL could not take right now.

Rows are appended to ``var/spool/usage-<pid>.jsonl`` and written later by a
background flush (and by ``manage.py billing_flush_spool``), with the same
insert-or-ignore, so a row is never lost and never counted twice.
"""

import json
import logging
import os
import threading
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("saascore.billing")
_lock = threading.Lock()


def spool_dir() -> Path:
    return Path(settings.BILLING_SPOOL_DIR)


def spool(row: dict) -> None:
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _lock, (folder / f"usage-{os.getpid()}.jsonl").open("a") as handle:
        handle.write(json.dumps(row, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def spooled_files() -> list[Path]:
    folder = spool_dir()
    return sorted(folder.glob("usage-*.jsonl")) if folder.exists() else []


def drain(write) -> int:
    """Write every spooled row with ``write(row)``; keep the rows it could not write."""
    written = 0
    for path in spooled_files():
        with _lock:
            claimed = path.with_suffix(".flushing")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue
        rows = [json.loads(line) for line in claimed.read_text().splitlines() if line.strip()]
        failed = []
        for row in rows:
            try:
                write(row)
                written += 1
            except Exception:
                failed.append(row)
        claimed.unlink()
        for row in failed:
            spool(row)
        if failed:
            logger.warning("%d spooled usage rows still could not be written", len(failed))
            break
    return written
