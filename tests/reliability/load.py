"""Real concurrent clients over HTTP: each a thread that asks its questions in turn until stopped.

Every answer is kept (status, headers, body, when it started, how long it took), so a test
can wait for observable progress ("20 more answers since the fault") instead of sleeping,
and check every answer afterwards.
"""

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.serving import Headers

QUERY_PATH = "/api/v1/ai/query"


@dataclass(frozen=True)
class Answer:
    """One request's outcome; ``status`` None: the connection dropped without an answer."""

    client: str
    tenant_id: int
    query: str
    status: int | None
    headers: dict
    body: dict | None
    started: float  # time.monotonic()
    seconds: float
    error: str = ""

    @property
    def request_id(self) -> str | None:
        return (self.body or {}).get("request_id") if self.status == 200 else None

    @property
    def cache(self) -> str:
        return self.headers.get("X-Cache", "")


def post_query(
    base: str, key: str, body: dict, *, headers: dict | None = None, timeout: float = 60
) -> tuple[int | None, dict, dict | None, str]:
    """POST one query: (status, headers, JSON body, error); status None if no answer came back."""
    request = urllib.request.Request(
        base + QUERY_PATH,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, Headers(response.headers), json.loads(response.read()), ""
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return error.code, Headers(error.headers), parsed, ""
    except (OSError, http.client.HTTPException) as error:  # reset, refused, closed mid-answer
        return None, {}, None, f"{type(error).__name__}: {error}"


@dataclass
class Client:
    """One simulated caller of one tenant: asks ``questions`` (bodies) in turn, round and round,
    or once through when ``once``."""

    name: str
    tenant_id: int
    key: str
    questions: Sequence[dict]
    once: bool = False


@dataclass
class Load:
    base: str
    clients: list[Client]
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    def _run(self, client: Client) -> None:
        turn = 0
        while not self._stop.is_set():
            if client.once and turn >= len(client.questions):
                return
            body = client.questions[turn % len(client.questions)]
            turn += 1
            started = time.monotonic()
            status, headers, parsed, error = post_query(self.base, client.key, body)
            answer = Answer(
                client.name, client.tenant_id, body["query"], status, headers, parsed,
                started, time.monotonic() - started, error,
            )  # fmt: skip
            with self._changed:
                self.answers.append(answer)
                self._changed.notify_all()

    def start(self) -> "Load":
        for client in self.clients:
            self._launch(client)
        return self

    def add(self, client: Client) -> None:
        """One more client, from now on."""
        self.clients.append(client)
        self._launch(client)

    def _launch(self, client: Client) -> None:
        thread = threading.Thread(target=self._run, args=(client,), name=client.name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> list[Answer]:
        """Stop every client after its current request; every answer so far."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
            assert not thread.is_alive(), f"client {thread.name} did not finish its request"
        return list(self.answers)

    def join(self, timeout: float = 300) -> list[Answer]:
        """Wait for clients that ask ``once`` to finish."""
        for thread in self._threads:
            thread.join(timeout=timeout)
            assert not thread.is_alive(), f"client {thread.name} did not finish within {timeout} s"
        return list(self.answers)

    def mark(self) -> int:
        with self._changed:
            return len(self.answers)

    def since(self, mark: int) -> list[Answer]:
        with self._changed:
            return self.answers[mark:]

    def wait(self, predicate: Callable[[list[Answer]], bool], *, since: int = 0, timeout: float, what: str) -> int:
        """Wait until ``predicate`` holds for the answers since ``since``; returns the mark reached."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.answers[since:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    statuses = Counter((a.status, a.cache) for a in self.answers[since:])
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; since: {statuses}")
                self._changed.wait(timeout=left)
            return len(self.answers)

    def wait_count(self, count: int, *, since: int, timeout: float = 120, what: str = "answers") -> int:
        return self.wait(lambda new: len(new) >= count, since=since, timeout=timeout, what=f"{count} {what}")

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
