"""Bad environments give clear errors, not stack traces.

The machine runs a PostgreSQL 15 without pgvector on 127.0.0.1:5432 and a plain
Redis 7 on 127.0.0.1:6379: exactly the servers a newcomer might point us at.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG15_WITHOUT_PGVECTOR = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS_7 = "redis://127.0.0.1:6379/0"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "saascore.settings.local", **env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def _assert_names_missing_pgvector(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "no 'vector' extension" in output and "pgvector" in output
    assert "CREATE EXTENSION vector" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [["check", "--database", "default"], ["migrate", "--noinput"]])
def test_postgres_without_pgvector_stops_startup_with_a_clear_message(command):
    result = _run("manage.py", *command, DATABASE_URL=PG15_WITHOUT_PGVECTOR, DATABASE_OWNER_URL="")
    _assert_names_missing_pgvector(result)


def test_gunicorn_refuses_to_start_without_pgvector():
    result = _run(
        "-m", "gunicorn", "-c", "saascore/gunicorn_conf.py", "saascore.asgi:application",
        DATABASE_URL=PG15_WITHOUT_PGVECTOR, DATABASE_OWNER_URL="", BIND="127.0.0.1:0",
    )  # fmt: skip
    _assert_names_missing_pgvector(result)


def test_unreachable_postgres_is_named_clearly(tmp_path):
    result = _run("manage.py", "check", "--database", "default", DATABASE_URL=f"postgresql://x@/db?host={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Cannot connect to PostgreSQL" in output and "Traceback" not in output


def test_plain_redis_7_starts():
    result = _run("manage.py", "check", "--database", "default", REDIS_URL=MACHINE_REDIS_7)
    assert result.returncode == 0, result.stderr


def test_production_settings_refuse_to_start_without_secrets():
    env = {
        "DJANGO_SETTINGS_MODULE": "saascore.settings.production",
        "SECRET_KEY": "",
        "DATABASE_URL": "",
        "DATABASE_UNSCOPED_URL": "",
        "REDIS_URL": "",
    }
    result = _run("manage.py", "check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY, DATABASE_URL, DATABASE_UNSCOPED_URL, REDIS_URL" in result.stderr


def test_production_settings_start_with_them():
    env = {
        "DJANGO_SETTINGS_MODULE": "saascore.settings.production",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgresql://app@db.example/saascore",
        "DATABASE_UNSCOPED_URL": "postgresql://ops@db.example/saascore",
        "REDIS_URL": "redis://cache.example:6379/0",
        "ALLOWED_HOSTS": "api.example.com",
    }
    result = _run("-c", "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_typo_in_the_ai_settings_is_an_error_not_a_silent_default(settings):
    from django.core import checks

    settings.AI = {"ROW_CACHE_SECONDS": 2.0, "SINGLE_FLIGHT_LOCK_TLL": 3}
    errors = [e for e in checks.run_checks() if e.id == "saascore.E010"]
    assert len(errors) == 1 and "SINGLE_FLIGHT_LOCK_TLL" in errors[0].msg
    settings.AI = {"ROW_CACHE_SECONDS": 2.0}
    assert not [e for e in checks.run_checks() if e.id == "saascore.E010"]
