"""After every ``migrate``: give the application role the rights it needs, no more.

The owner role runs migrations and owns the tables; the application role gets
row-level rights (subject to RLS) on all of them. Production can grant the same
by hand (docs/operations.md); this keeps the embedded and test databases right.
"""

from django.conf import settings
from django.db import connections


def grant_app_role(*, using: str, **kwargs) -> None:
    role = settings.SAASCORE_DB_APP_ROLE
    connection = connections[using]
    if not role or role == connection.settings_dict.get("USER"):
        return
    table_rights = "SELECT, INSERT, UPDATE, DELETE"
    if settings.SAASCORE_DB_APP_GRANT_TRUNCATE:
        table_rights += ", TRUNCATE"
    quoted = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT {table_rights} ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
