"""PostgreSQL (psycopg 3) with every wait for the server bounded.

The server bounds a slow statement (``statement_timeout``) and a lock wait
(``lock_timeout``), set when a connection opens; ``connect_timeout`` bounds the
connection itself. A server that stops answering at all (paused, a network
partition, a dead failover) fires none of them, so the client bounds each wait
too: every round trip of a connection (queries, COMMIT, ROLLBACK, health checks)
gives up after ``CLIENT_TIMEOUT`` seconds, closes the connection (its state is
unknown) and raises ``OperationalError``, which the API answers with 503.

Settings, per alias: ``CLIENT_TIMEOUT`` (seconds, None: unbounded, as for the
owner alias that runs migrations), ``STATEMENT_TIMEOUT_MS``, ``LOCK_TIMEOUT_MS``.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import InterfaceError, OperationalError, connections
from django.db.backends.postgresql import base as postgresql
from psycopg import errors


class BoundedConnection(psycopg.Connection):
    """psycopg's connection whose every wait on the server has a deadline."""

    wait_timeout: float | None = None

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        try:
            return super().wait(gen, interval, timeout if timeout is not None else self.wait_timeout)
        except errors._WaitTimeout:  # psycopg's own timeout signal (pinned psycopg 3.3)
            self.pgconn.finish()  # mid-protocol: the connection cannot be trusted again
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {self.wait_timeout or timeout} s"
            ) from None


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.__class__ = BoundedConnection  # adds one method; same layout
        connection.wait_timeout = self.settings_dict.get("CLIENT_TIMEOUT")
        return connection

    def init_connection_state(self) -> None:
        super().init_connection_state()
        timeouts = [
            ("statement_timeout", self.settings_dict.get("STATEMENT_TIMEOUT_MS")),
            ("lock_timeout", self.settings_dict.get("LOCK_TIMEOUT_MS")),
        ]
        assignments = [(name, int(value)) for name, value in timeouts if value]
        if assignments and self.connection is not None:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in assignments),
                    [item for name, value in assignments for item in (name, str(value))],
                )
            if not self.get_autocommit():
                self.connection.commit()


@contextmanager
def client_timeout(seconds: float, *, using: str = "default") -> Iterator[None]:
    """Bound this thread's waits on ``using`` more tightly for a block (a readiness probe)."""
    wrapper = connections[using]
    configured = wrapper.settings_dict.get("CLIENT_TIMEOUT")
    bound = min(seconds, configured) if configured else seconds

    def apply(value: float | None) -> None:
        wrapper.settings_dict["CLIENT_TIMEOUT"] = value
        if isinstance(wrapper.connection, BoundedConnection):
            wrapper.connection.wait_timeout = value

    apply(bound)
    try:
        yield
    finally:
        apply(configured)


def database_unavailable(exc: BaseException) -> bool:
    """Is this the database being unreachable, stalled or refusing for now (503), not a bug (500)?"""
    return isinstance(exc, OperationalError | InterfaceError)
