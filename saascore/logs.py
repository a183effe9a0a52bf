"""Log lines that carry the request: one JSON object per line, or plain text in development.

Every record gets ``request_id`` (the server's) and ``tenant_id`` from context
variables, and ``client_request_id`` when the caller sent its own:
``saascore.middleware.RequestIdMiddleware`` sets the request id for each request,
API key authentication sets the tenant id once it knows the tenant, and both are
cleared when the response is closed (``request_finished``), so Django's own
4xx/5xx lines and gunicorn's access line still carry them. Outside a request
both are null.

What it does not do: keep query text out of the logs. That is the callers' rule:
query text is never logged above DEBUG.
"""

import contextvars
import logging
import os
from datetime import UTC, datetime

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
tenant_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("tenant_id", default=None)
# The caller's own id for the request (X-Client-Request-Id / X-Request-ID): logged beside ours.
client_request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_request_id", default=None)

FORMATS = ("json", "plain")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s tenant=%(tenant_id)s] %(message)s"


def clear_request_context(**kwargs) -> None:
    """``request_finished``: the thread serves no request any more."""
    request_id_var.set(None)
    tenant_id_var.set(None)
    client_request_id_var.set(None)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant_id`` to every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "tenant_id", None) is None:
            record.tenant_id = tenant_id_var.get()
        if getattr(record, "client_request_id", None) is None and client_request_id_var.get():
            record.client_request_id = client_request_id_var.get()
        return True


class JsonFormatter(_JsonFormatter):
    """``{"timestamp", "level", "logger", "message", "request_id", "tenant_id", ...extra}``,
    timestamp in UTC ISO 8601 with milliseconds; exceptions under ``exc_info``.
    Django's ``request`` extra is left out (the request id names the request)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["timestamp"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["request_id"] = getattr(record, "request_id", None) or request_id_var.get()
        log_data["tenant_id"] = getattr(record, "tenant_id", None) or tenant_id_var.get()
        super().add_fields(log_data, record, message_dict)


def log_format(default: str) -> str:
    """``LOG_FORMAT`` from the environment (json or plain), else ``default``."""
    value = (os.environ.get("LOG_FORMAT") or default).strip().lower()
    if value not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def logging_config(fmt: str, level: str) -> dict:
    """Django's ``LOGGING``: one console handler on stderr, in ``fmt``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": "saascore.logs.RequestContextFilter"}},
        "formatters": {
            "json": {"()": "saascore.logs.JsonFormatter"},
            "plain": {"format": PLAIN_FORMAT},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["request_context"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def gunicorn_logging_config(level: str) -> dict:
    """gunicorn's own lines (its error log on stderr, its access log on stdout) as JSON."""
    handler = {"formatter": "json", "filters": ["request_context"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": []},
        "filters": {"request_context": {"()": "saascore.logs.RequestContextFilter"}},
        "formatters": {"json": {"()": "saascore.logs.JsonFormatter"}},
        "handlers": {
            "json_stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", **handler},
            "json_stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", **handler},
        },
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["json_stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["json_stdout"], "propagate": False},
        },
    }
