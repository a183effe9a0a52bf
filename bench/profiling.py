"""py-spy on the gunicorn workers while a load step runs: where the CPU time goes.

``record(pids, seconds, folder, label)`` samples every worker (idle threads, such as
those waiting on the upstream, are not sampled) and writes py-spy's raw
collapsed stacks; ``summarise`` turns them into inclusive shares per part of the
request (a sample counts for every part on its stack) and the hottest leaves.
"""

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

PARTS = {
    "embedding (onnxruntime, tokenizer)": ("ai/embeddings/", "onnxruntime", "tokenizers"),
    "PostgreSQL (psycopg + Django ORM)": ("psycopg", "django/db/"),
    "Redis client": ("redis/",),
    "semantic cache lookup": ("ai/cache/semantic.py:lookup_semantic", "ai/cache/semantic.py:_lookup_semantic"),
    "exact cache lookup": ("ai/cache/semantic.py:lookup_exact",),
    "router": ("ai/router/",),
    "retrieval (pgvector)": ("ai/rag/retrieval.py",),
    "upstream client (openai, httpx2)": ("openai/", "httpx2/", "httpcore2/"),
    "API key authentication": ("tenants/authentication.py", "tenants/services.py:api_key_verify"),
    "admission + release (billing)": ("billing/admission.py:admit", "billing/admission.py:release"),
    "usage ledger row": ("billing/services.py:usage_record",),
    "logging": ("logging/", "saascore/logs.py"),
    "metrics (prometheus_client)": ("prometheus_client/", "django_prometheus/"),
    "DRF + Django request handling": ("rest_framework/", "django/core/handlers/", "django/middleware/"),
    "gunicorn (accept, parse, write)": ("gunicorn/",),
    "JSON": ("json/",),
}
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>.+?)(?::\d+)?\)$")


def record(pids: list[int], seconds: float, folder: Path, label: str, *, gil: bool = False) -> list[subprocess.Popen]:
    """Start one py-spy per worker (returns at once); wait for the processes to finish.

    ``gil``: sample only the thread holding the GIL (Python CPU time); otherwise every
    thread that is not idle, which includes threads waiting on PostgreSQL or Redis.
    """
    spy = Path(sys.executable).with_name("py-spy")
    processes = []
    for pid in pids:
        out = folder / f"pyspy-{label}{'-gil' if gil else ''}-{pid}.txt"
        command = [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
        command += ["--format", "raw", "--nonblocking", "-o", str(out)] + (["--gil"] if gil else [])
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return processes


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match:
            frames.append((match["function"], match["file"].replace("\\", "/")))
    return frames


def summarise(files: list[Path], top: int = 15) -> dict:
    parts: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = _frames(stack)
            names = [f"{file}:{function}" for function, file in frames]
            for part, needles in PARTS.items():
                if any(needle in name for name in names for needle in needles):
                    parts[part] += n
            if frames:
                function, file = frames[-1]
                leaves[f"{function} ({_short(file)})"] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "inclusive_share": {part: round(n / total, 3) for part, n in parts.most_common()},
        "hottest_leaves": {leaf: round(n / total, 3) for leaf, n in leaves.most_common(top)},
    }


def _short(file: str) -> str:
    marker = "site-packages/"
    return file.split(marker, 1)[1] if marker in file else file.rsplit("/work/main/", 1)[-1]


class PgWaits:
    """Samples pg_stat_activity of the project's database while a load step runs: what its
    backends wait for (a row lock shows as Lock/tuple or Lock/transactionid)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.counts: Counter = Counter()
        self.samples = 0

    def __enter__(self) -> "PgWaits":
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        from saascore.embedded import EmbeddedPostgres, embedded_paths
        from saascore.embedded.postgres import DATABASE, SUPERUSER

        socket_dir = EmbeddedPostgres(embedded_paths()).socket_dir
        sql = (
            "SELECT state, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-') FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        with psycopg.connect(host=str(socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                self.samples += 1
                for state, kind, event in conn.execute(sql, [DATABASE]).fetchall():
                    self.counts[f"{state}: {kind}/{event}"] += 1

    def summary(self) -> dict:
        """Mean number of busy backends per sample, by what they were doing."""
        if not self.samples:
            return {}
        return {key: round(n / self.samples, 2) for key, n in self.counts.most_common(8)}


class _Statements:
    """Counts the statements every psycopg cursor of this process runs, in any thread (the
    product's async views run the ORM in worker threads, which Django's per-connection
    ``CaptureQueriesContext`` of the calling thread does not see)."""

    def __init__(self) -> None:
        self.verbs: Counter = Counter()
        self.texts: list[str] = []

    def __enter__(self) -> "_Statements":
        import psycopg

        self._saved = []
        for cls in (psycopg.Cursor, psycopg.AsyncCursor):
            for name in ("execute", "executemany"):
                original = cls.__dict__[name]
                self._saved.append((cls, name, original))
                setattr(cls, name, self._counting(original))
        return self

    def _counting(self, original):
        import inspect

        def verb(query) -> str:
            text = query if isinstance(query, str) else getattr(query, "as_string", lambda _c: str(query))(None)
            text = " ".join(str(text).split())
            self.texts.append(text[:160])
            return (text.split() or ["?"])[0].upper()

        if inspect.iscoroutinefunction(original):

            async def counted_async(cursor, query, *args, **kwargs):
                self.verbs[verb(query)] += 1
                return await original(cursor, query, *args, **kwargs)

            return counted_async

        def counted(cursor, query, *args, **kwargs):
            self.verbs[verb(query)] += 1
            return original(cursor, query, *args, **kwargs)

        return counted

    def __exit__(self, *exc) -> None:
        for cls, name, original in self._saved:
            setattr(cls, name, original)


def sql_per_request(key: str, queries: dict[str, str], warm: str | None = None) -> dict:
    """SQL statements one request runs, in this process through Django's full stack
    (same settings, database and Redis as the gateway), per kind of answer, counted at
    psycopg's cursors in every thread.

    ``warm``: a question asked just before each counted one, not counted, so that the
    per-process row caches (which expire after ``AI["ROW_CACHE_SECONDS"]``) are as in
    steady traffic. Work a request leaves for later (the ledger's spool) is not in its count.
    """
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")
    out = {}
    for label, text in queries.items():
        if warm:
            client.post("/api/v1/ai/query", {"query": warm}, content_type="application/json")
        with _Statements() as captured:
            response = client.post("/api/v1/ai/query", {"query": text}, content_type="application/json")
        body = response.json()
        tier = (body.get("cache") or {}).get("tier") or body.get("source")
        statements = sum(captured.verbs.values())
        out[label] = {"status": response.status_code, "answered_by": tier, "statements": statements}
        out[label]["by_verb"] = dict(captured.verbs)
        out[label]["sql"] = captured.texts
        if response.status_code != 200:
            out[label]["error"] = body.get("error")
    return out


def pg_counters() -> dict[str, int]:
    """PostgreSQL's own counters of the project's database (pg_stat_database), read
    after forcing this session's view fresh; differences over a step, divided by its
    requests, give transactions and rows written per request. The embedded server has
    no pg_stat_statements, so statements are counted in-process (``sql_per_request``)."""
    import psycopg

    from saascore.embedded import EmbeddedPostgres, embedded_paths
    from saascore.embedded.postgres import DATABASE, SUPERUSER

    time.sleep(1.2)  # backends flush their statistics at most once a second when idle
    socket_dir = EmbeddedPostgres(embedded_paths()).socket_dir
    sql = (
        "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted "
        "FROM pg_stat_database WHERE datname = %s"
    )
    with psycopg.connect(host=str(socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(sql, [DATABASE]).fetchone()
    names = ("transactions", "rows_returned", "rows_fetched", "rows_inserted", "rows_updated", "rows_deleted")
    return dict(zip(names, row, strict=True))


def pg_per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    return {k: round((after[k] - before[k]) / requests, 2) for k in before} if requests else {}
