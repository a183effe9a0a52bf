"""Row-Level Security for tenant-owned tables, as a migration operation.

``EnableTenantRLS("ModelName", shared=False)`` enables and FORCEs RLS on the model's table and
adds one policy: a row is visible (and writable) when its ``tenant_id`` is the
transaction's ``app.tenant_id``, or when the *role* running the query is one of
the unscoped roles (``unscoped_scope``'s connection, ``DATABASE_UNSCOPED_URL``).

Which roles are unscoped is decided by the function ``saascore_rls_unscoped()``,
owned by the owner role and rewritten by every ``migrate`` from
``settings.SAASCORE_DB_UNSCOPED_ROLE``. The application role can neither change
the function nor become another role, so a SQL injection through it stays inside
the tenant of its transaction: no setting it can write turns the policy off.

FORCE makes the policy bind the table owner too; only superusers and BYPASSRLS
roles pass it, and the application role is neither.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import migrations

from tenants.scoping import TENANT_SETTING

POLICY = "tenant_isolation"
GLOBAL_READ_POLICY = "global_read"
UNSCOPED_FUNCTION = "saascore_rls_unscoped"
PREDICATE = f"tenant_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')::bigint OR {UNSCOPED_FUNCTION}()"

# Until the first `migrate` names the unscoped role, no role is unscoped.
_CREATE_FUNCTION_IF_MISSING = f"""
DO $$ BEGIN
  IF to_regprocedure('{UNSCOPED_FUNCTION}()') IS NULL THEN
    CREATE FUNCTION {UNSCOPED_FUNCTION}() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS 'SELECT false';
  END IF;
END $$;
"""


def unscoped_function_sql(roles: list[str]) -> str:
    """The function's body for these unscoped roles (none: nobody reads across tenants)."""
    names = ", ".join("'" + role.replace("'", "''") + "'" for role in roles)
    body = f"SELECT current_user = ANY (ARRAY[{names}]::name[])" if roles else "SELECT false"
    return (
        f"CREATE OR REPLACE FUNCTION {UNSCOPED_FUNCTION}() RETURNS boolean "
        f"LANGUAGE sql STABLE PARALLEL SAFE AS $fn${body}$fn$"
    )


def enable_sql(table: str, *, shared: bool = False) -> str:
    sql = (
        _CREATE_FUNCTION_IF_MISSING + f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY;'
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY;'
        f'CREATE POLICY {POLICY} ON "{table}" USING ({PREDICATE}) WITH CHECK ({PREDICATE});'
    )
    if shared:
        # Shared tables: every tenant may read the global rows (tenant_id NULL).
        # Only SELECT: an UPDATE or DELETE must also pass tenant_isolation, so
        # only an unscoped transaction changes global rows.
        sql += f'CREATE POLICY {GLOBAL_READ_POLICY} ON "{table}" FOR SELECT USING (tenant_id IS NULL);'
    return sql


def disable_sql(table: str) -> str:
    return (
        f'DROP POLICY IF EXISTS {POLICY} ON "{table}";'
        f'DROP POLICY IF EXISTS {GLOBAL_READ_POLICY} ON "{table}";'
        f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY;'
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY;'
    )


def realign_policies_sql() -> str:
    """Give every existing tenant_isolation policy today's predicate (databases migrated before it)."""
    predicate = PREDICATE.replace("'", "''")  # inside a string literal
    return (
        _CREATE_FUNCTION_IF_MISSING
        + f"""
DO $$ DECLARE t record; BEGIN
  FOR t IN SELECT schemaname, tablename FROM pg_policies WHERE policyname = '{POLICY}' LOOP
    EXECUTE format('ALTER POLICY {POLICY} ON %I.%I USING ({predicate}) WITH CHECK ({predicate})',
                   t.schemaname, t.tablename);
  END LOOP;
END $$;
"""
    )


class EnableTenantRLS(migrations.operations.base.Operation):
    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, shared: bool = False) -> None:
        self.model_name = model_name
        self.shared = shared

    def state_forwards(self, app_label, state) -> None:
        pass

    def _table(self, app_label, state) -> str:
        return state.apps.get_model(app_label, self.model_name)._meta.db_table

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        schema_editor.execute(enable_sql(self._table(app_label, to_state), shared=self.shared))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        schema_editor.execute(disable_sql(self._table(app_label, from_state)))

    def describe(self) -> str:
        return f"Enable tenant row-level security on {self.model_name}"

    def deconstruct(self):
        return self.__class__.__name__, [self.model_name], {"shared": self.shared} if self.shared else {}


@contextmanager
def owner_writes(schema_editor, table: str) -> Iterator[None]:
    """A migration's data step that writes rows RLS would refuse (global rows): the owner
    lifts FORCE for the length of the migration's transaction. Others wait on the table's
    lock, so nobody sees it unforced."""
    schema_editor.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
    yield
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks may wait on the table
    schema_editor.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
