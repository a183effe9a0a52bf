"""Row-Level Security for tenant-owned tables, as a migration operation.

``EnableTenantRLS("ModelName", shared=False)`` enables and FORCEs RLS on the model's table and
adds one policy: a row is visible (and writable) when its ``tenant_id`` is the
transaction's ``app.tenant_id``, or when the transaction set ``app.rls_bypass``
(``unscoped_scope``). FORCE makes the policy bind the table owner too; only
superusers and BYPASSRLS roles pass it, and the application role is neither.
"""

from django.db import migrations

from tenants.scoping import BYPASS_SETTING, TENANT_SETTING

POLICY = "tenant_isolation"
GLOBAL_READ_POLICY = "global_read"
_PREDICATE = (
    f"tenant_id = NULLIF(current_setting('{TENANT_SETTING}', true), '')::bigint"
    f" OR current_setting('{BYPASS_SETTING}', true) = 'on'"
)


def enable_sql(table: str, *, shared: bool = False) -> str:
    sql = (
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY;'
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY;'
        f'CREATE POLICY {POLICY} ON "{table}" USING ({_PREDICATE}) WITH CHECK ({_PREDICATE});'
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
