"""gunicorn settings: sync Django views in gthread workers (LLM calls wait on I/O)."""

import os
import sys

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
accesslog = "-"
preload_app = False


def on_starting(server) -> None:
    """Refuse to start against a database that cannot run the product."""
    import django
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    django.setup()
    try:
        call_command("check", databases=["default"])
    except SystemCheckError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
