"""Settings shared by every environment. Secrets and URLs come from the environment only.

``local`` and ``test`` fall back to the embedded PostgreSQL and Redis under var/;
``production`` refuses to start without ``DATABASE_URL``, ``REDIS_URL`` and
``SECRET_KEY``. See docs/operations.md for every setting.
"""

import os
from pathlib import Path

import dj_database_url

from saascore.logs import log_format, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name) or default).split(",") if item.strip()]


def database_settings(url: str) -> dict:
    return dj_database_url.parse(url)


DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "saascore",  # first: its `migrate` runs migrations as the owner role
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "simple_history",  # the audit trail's history tables and admin views (tenants/audit.py)
    "tenants",
    "catalog",
    "billing",
    "ai",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "saascore.middleware.OpenAIErrorMiddleware",
    "saascore.middleware.RequestIdMiddleware",
    "saascore.middleware.ApiErrorMiddleware",
    "saascore.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.AdminScopeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# The hot paths (saascore/asgi.py): served by a stack of natively async middleware only.
LEAN_PATHS = ["/api/v1/ai/query", "/v1/"]
LEAN_MIDDLEWARE = [
    "saascore.middleware.HttpMetricsMiddleware",
    "saascore.middleware.OpenAIErrorMiddleware",
    "saascore.middleware.RequestIdMiddleware",
    "saascore.middleware.ApiErrorMiddleware",
    "saascore.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "saascore.urls"
WSGI_APPLICATION = "saascore.wsgi.application"
ASGI_APPLICATION = "saascore.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------
# DATABASE_URL: the application's role (no superuser, no BYPASSRLS, owns no tables).
# DATABASE_OWNER_URL: the role that owns the tables and runs `migrate`.
# DATABASE_UNSCOPED_URL: the role of cross-tenant work (operators' admin, jobs),
#   which the row-level security policies admit (tenants/rls.py); never the app role.
DATABASE_URL = env("DATABASE_URL")
DATABASE_OWNER_URL = env("DATABASE_OWNER_URL")
DATABASE_UNSCOPED_URL = env("DATABASE_UNSCOPED_URL")
DATABASE_CONN_MAX_AGE = int(env("DATABASE_CONN_MAX_AGE", "60"))
# Every wait for PostgreSQL is bounded (saascore/db/base.py): past these, the request
# gets 503 with Retry-After instead of hanging on a stalled or unreachable server.
DATABASE_CONNECT_TIMEOUT = int(env("DATABASE_CONNECT_TIMEOUT", "3"))
DATABASE_STATEMENT_TIMEOUT_MS = int(env("DATABASE_STATEMENT_TIMEOUT_MS", "5000"))
DATABASE_LOCK_TIMEOUT_MS = int(env("DATABASE_LOCK_TIMEOUT_MS", "2000"))
# Default: the statement timeout and a second; 0 (or no statement timeout) leaves waits unbounded.
DATABASE_CLIENT_TIMEOUT = float(
    env(
        "DATABASE_CLIENT_TIMEOUT", str(DATABASE_STATEMENT_TIMEOUT_MS / 1000 + 1 if DATABASE_STATEMENT_TIMEOUT_MS else 0)
    )
)


def _served(entry: dict) -> dict:
    """An alias that serves requests: every wait bounded."""
    options = {"connect_timeout": DATABASE_CONNECT_TIMEOUT, **entry.get("OPTIONS", {})}
    return {
        **entry,
        "ENGINE": "saascore.db",
        "OPTIONS": options,
        "CONN_MAX_AGE": DATABASE_CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
        "CLIENT_TIMEOUT": DATABASE_CLIENT_TIMEOUT or None,
        "STATEMENT_TIMEOUT_MS": DATABASE_STATEMENT_TIMEOUT_MS,
        "LOCK_TIMEOUT_MS": DATABASE_LOCK_TIMEOUT_MS,
    }


def databases(app: dict, owner: dict, unscoped: dict | None) -> dict:
    """``default`` (the app role), ``owner`` (migrations: no timeouts) and ``unscoped``."""
    found = {
        "default": _served(app),
        "owner": {**owner, "ENGINE": "saascore.db", "CONN_MAX_AGE": DATABASE_CONN_MAX_AGE},
    }
    if unscoped:
        found["unscoped"] = _served(unscoped)
    return found


DATABASE_ROUTERS = ["tenants.scoping.ScopeRouter"]


# --- Redis ------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")


def caches(redis_url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "dj",
            "TIMEOUT": 300,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                # The Django cache (throttles, small caches) must never take a request down.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }


DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/billing/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- API ------------------------------------------------------------------------
# Request bodies on /api/ larger than this get 413 before anything reads them.
API_MAX_BODY_BYTES = int(env("API_MAX_BODY_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser, hardened: nesting, encoding and number errors are 400s (saascore/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["saascore.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "saascore.api.negotiation.ContentNegotiation",
    # drf-spectacular's, plus every operation's error responses and headers (saascore/api/schema.py).
    "DEFAULT_SCHEMA_CLASS": "saascore.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "saascore.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "saascore API",
    "DESCRIPTION": "Multi-tenant AI query gateway: semantic cache, adaptive routing, RAG and billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Security schemes come from the API key authentication's extension (saascore/api/schema.py).
}

# --- Tenancy --------------------------------------------------------------------
# The roles named in DATABASE_URL and DATABASE_UNSCOPED_URL, granted rights on every
# table after `migrate`; the second is the one the RLS policies admit across tenants.
SAASCORE_DB_APP_ROLE: str | None = None
SAASCORE_DB_UNSCOPED_ROLE: str | None = None
# Tests flush tables between transactional tests, which needs TRUNCATE.
SAASCORE_DB_APP_GRANT_TRUNCATE = False

# Usage rows PostgreSQL could not take wait here (billing/spool.py): a local directory
# that outlives the process (a persistent volume in a container). Each app host has its own.
BILLING_SPOOL_DIR = Path(env("BILLING_SPOOL_DIR") or BASE_DIR / "var" / "spool")
# How often a worker retries writing them while rows wait; None: only `billing_flush_spool`.
BILLING_SPOOL_RETRY_SECONDS: float | None = 10.0
# A cache hit answers once its usage row is in the process's journal in the spool directory
# (billing/journal.py), not after its commit: a killed worker loses no row, a host that loses
# power may lose the last moments' hit rows. False: hits wait for the commit, as misses do.
BILLING_JOURNAL_HITS = env_bool("BILLING_JOURNAL_HITS", True)

# How often every process (gunicorn workers, db_worker) applies cache invalidations Redis
# did not take when their change committed (ai/cache/invalidation.py): the most another
# process may still serve a tenant's old answers after such a failure. None: no
# background sweep (tests sweep by hand).
CACHE_INVALIDATION_SWEEP_SECONDS: float | None = float(env("CACHE_INVALIDATION_SWEEP_SECONDS") or 2.0)

# Where `manage.py demo` writes the demo operator's and tenants' credentials.
DEMO_CREDENTIALS_FILE = BASE_DIR / "var" / "demo-credentials.json"

# Background jobs (document ingestion): Django's task API, a database queue,
# run by `python manage.py db_worker`. Tests and the demo run tasks at once.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Logs ---------------------------------------------------------------------------
# One JSON object per line (timestamp, level, logger, message, request_id, tenant_id),
# or LOG_FORMAT=plain; local development defaults to plain (saascore/logs.py).
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = log_format(default="json")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)

# --- Operators' endpoints ------------------------------------------------------------------
# /metrics and the details of /health/ready (saascore/ops.py): open in development and
# tests; in production only with `Authorization: Bearer $OPS_TOKEN` (no token: no /metrics).
OPS_TOKEN = env("OPS_TOKEN")
OPS_ENDPOINTS_PUBLIC = False

# --- Metrics ---------------------------------------------------------------------------
# Product settings (saascore/conf.py); METRICS_TENANT_ALLOWLIST: comma-separated tenant slugs
# that get their own `tenant` label on the query and money series (others: "other").
AI = {"METRICS_TENANT_ALLOWLIST": env_list("METRICS_TENANT_ALLOWLIST")}
