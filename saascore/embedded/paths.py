"""Where the embedded servers keep their data, logs and sockets."""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# A unix socket path must fit in sockaddr_un (108 bytes on Linux, with the NUL).
# PostgreSQL appends "/.s.PGSQL.5432" to its socket directory.
_MAX_SOCKET_DIR = 90


@dataclass(frozen=True)
class EmbeddedPaths:
    var: Path
    run: Path

    @property
    def log(self) -> Path:
        return self.var / "log"

    @property
    def pg_data(self) -> Path:
        return self.var / "postgres"

    @property
    def redis_data(self) -> Path:
        return self.var / "redis"

    @property
    def redis_socket(self) -> Path:
        return self.run / "redis.sock"


def _run_dir(var: Path) -> Path:
    run = var / "run"
    if len(str(run)) <= _MAX_SOCKET_DIR:
        return run
    # A deep checkout: keep the sockets under /tmp, one folder per checkout.
    digest = hashlib.sha256(str(var).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"saascore-{digest}"


def embedded_paths() -> EmbeddedPaths:
    var = Path(os.environ.get("SAASCORE_VAR_DIR", BASE_DIR / "var")).resolve()
    return EmbeddedPaths(var=var, run=_run_dir(var))
