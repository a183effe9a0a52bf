"""The reliability suite: the product over real HTTP (gunicorn, 2 workers), real PostgreSQL
and Redis, and the OpenAI-compatible test server where an LLM must answer.

Every test of the suite runs under ``plaintext``: the servers it starts through ``serve``
keep every output line, the keys it makes are listed, and when the test ends no key's
plaintext may be in those lines, in any table or in the test Redis.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.reliability import plaintext as leaks
from tests.serving import Served, served


@dataclass
class Plaintext:
    """What a test exposed: its API keys, its servers' output, and Redis servers to search."""

    keys: list[str] = field(default_factory=list)
    servers: list[Served] = field(default_factory=list)
    redis_urls: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [line for server in self.servers for line in server.lines]

    def check(self, *, redis_urls: list[str] | None = None) -> None:
        leaks.assert_nowhere(
            self.keys, lines=self.lines, redis_urls=[*self.redis_urls, *(redis_urls or [])], folders=self.folders
        )


@pytest.fixture(autouse=True)
def plaintext(transactional_db):
    """Runs after the test, before its rows are flushed: no key plaintext anywhere it could go."""
    found = Plaintext(redis_urls=[settings.REDIS_URL])
    yield found
    if found.keys and found.servers:
        found.check()


@pytest.fixture
def serve(plaintext, tmp_path):
    """``serve(workers=2, ai={...}, **env)``: a gunicorn whose every line the key check reads.
    JSON logs; no provider credentials unless the test passes them; its own usage spool."""

    @contextmanager
    def start(*, workers: int = 2, ai: dict | None = None, **env: str):
        spool = tmp_path / f"spool-{len(plaintext.servers)}"
        plaintext.folders.append(spool)
        defaults = {
            "LOG_FORMAT": "json", "BILLING_SPOOL_DIR": str(spool),
            "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "ANTHROPIC_API_KEY": "", "ANTHROPIC_BASE_URL": "",
        }  # fmt: skip
        with served(workers=workers, ai=ai, settings_module="tests.served_settings", **{**defaults, **env}) as s:
            plaintext.servers.append(s)
            yield s

    return start
