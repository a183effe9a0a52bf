"""After every ``migrate``: give the application and unscoped roles the rights they need,
and name the unscoped role in the row-level security function.

The owner role runs migrations and owns the tables; the application role and the
unscoped role get row-level rights on all of them (the first under RLS, the
second admitted across tenants by ``saascore_rls_unscoped()``, tenants/rls.py).
Production can grant the same by hand (docs/operations.md); this keeps the
embedded and test databases right.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from tenants.rls import unscoped_function_sql


def grant_app_role(*, using: str, **kwargs) -> None:
    connection = connections[using]
    app_role, unscoped_role = settings.SAASCORE_DB_APP_ROLE, settings.SAASCORE_DB_UNSCOPED_ROLE
    if unscoped_role and unscoped_role == app_role:
        raise ImproperlyConfigured(
            "DATABASE_UNSCOPED_URL names the application role: row-level security would not bind the "
            "application. Give cross-tenant work its own role (docs/operations.md)."
        )
    if connection.settings_dict.get("USER") in (app_role, unscoped_role):
        return  # not the owner (a test's flush sends post_migrate too): nothing to grant
    table_rights = "SELECT, INSERT, UPDATE, DELETE"
    if settings.SAASCORE_DB_APP_GRANT_TRUNCATE:
        table_rights += ", TRUNCATE"
    with connection.cursor() as cursor:
        for role in (app_role, unscoped_role):
            if not role:
                continue
            quoted = connection.ops.quote_name(role)
            cursor.execute(f"GRANT {table_rights} ON ALL TABLES IN SCHEMA public TO {quoted}")
            cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        cursor.execute(unscoped_function_sql([unscoped_role] if unscoped_role else []))
