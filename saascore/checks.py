"""Start-up checks of the database: they stop `migrate` and the server with a
message a person can act on, instead of a stack trace later.

They run with ``manage.py check --database default``, before ``migrate``, and in
gunicorn's ``on_starting`` hook.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections
from django.db.utils import OperationalError

from saascore.conf import DEFAULTS

MIN_PGVECTOR = (0, 8)


@register()
def check_ai_settings(app_configs=None, **kwargs):
    """A typo inside ``settings.AI`` is an error, not a default silently used (as DRF's settings)."""
    unknown = sorted(set(getattr(settings, "AI", {}) or {}) - set(DEFAULTS))
    if not unknown:
        return []
    return [
        Error(
            f"Unknown key(s) in settings.AI: {', '.join(unknown)}.",
            hint="The known keys, their defaults and meanings are in saascore/conf.py (DEFAULTS).",
            id="saascore.E010",
        )
    ]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


@register(Tags.database)
def check_postgres(app_configs=None, databases=None, **kwargs):
    errors = []
    for alias in databases or []:
        connection = connections[alias]
        where = f"database '{alias}' ({connection.settings_dict.get('HOST') or 'local socket'})"
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
                )
                row = cursor.fetchone()
                cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
                superuser, bypass = cursor.fetchone()
        except OperationalError as exc:
            errors.append(
                Error(
                    f"Cannot connect to PostgreSQL, {where}: {str(exc).strip().splitlines()[0]}",
                    hint="Check DATABASE_URL, or unset it and run `python manage.py services start` "
                    "for the embedded server.",
                    id="saascore.E001",
                )
            )
            continue
        if row is None:
            errors.append(
                Error(
                    f"PostgreSQL, {where}, has no 'vector' extension (pgvector >= 0.8 is required).",
                    hint="Install pgvector on the server (Debian/Ubuntu: apt install postgresql-<major>-pgvector; "
                    "see https://github.com/pgvector/pgvector#installation), then run "
                    "`CREATE EXTENSION vector;` as a superuser in the database. Or unset DATABASE_URL "
                    "to use the embedded PostgreSQL with pgvector.",
                    id="saascore.E002",
                )
            )
            continue
        version = row[1] or row[0]
        if _version(version) < MIN_PGVECTOR:
            errors.append(
                Error(
                    f"pgvector {version} on {where} is too old: 0.8 or newer is required "
                    "(iterative index scans for tenant-filtered search).",
                    hint="Upgrade pgvector, then `ALTER EXTENSION vector UPDATE;`.",
                    id="saascore.E003",
                )
            )
        if alias == "default" and (superuser or bypass):
            errors.append(
                Warning(
                    f"The application connects to {where} as a role that is "
                    f"{'superuser' if superuser else 'BYPASSRLS'}: Row-Level Security does not apply to it.",
                    hint="Point DATABASE_URL at a role without SUPERUSER and BYPASSRLS (docs/operations.md).",
                    id="saascore.W001",
                )
            )
    return errors
