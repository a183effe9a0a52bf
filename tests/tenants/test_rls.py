"""Row-Level Security: the second wall, proved with raw SQL as the application role."""

import pytest
from django.apps import apps
from django.db import IntegrityError, ProgrammingError, connections, transaction

from tenants.scoping import UNSCOPED_ALIAS, TenantOwnedModel, tenant_scope, unscoped_scope
from tests.factories import make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection


def _fetch(sql: str, params=None, using: str = "default") -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def test_application_role_cannot_bypass_rls():
    ((superuser, bypass, role),) = _fetch(
        "SELECT rolsuper, rolbypassrls, rolname FROM pg_roles WHERE rolname = current_user"
    )
    assert (superuser, bypass) == (False, False)
    owned = _fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s", [role])
    assert owned == []


# Tables every tenant may read (never write) across tenants, each named in tenants/SCOPING.md:
# their rows hold a tenant id and a time, nothing of the tenant's data.
READABLE_ACROSS_TENANTS = {"ai_pendinginvalidation"}


def test_every_tenant_owned_table_has_forced_rls():
    tenant_owned = [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]
    assert tenant_owned, "no tenant-owned models found"
    for model in tenant_owned:
        table = model._meta.db_table
        ((enabled, forced),) = _fetch(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", [table]
        )
        policies = _fetch("SELECT policyname FROM pg_policies WHERE tablename = %s ORDER BY policyname", [table])
        assert enabled and forced, f"{table} lacks forced row-level security"
        expected = [("cross_tenant_read",), ("tenant_isolation",)] if table in READABLE_ACROSS_TENANTS else []
        assert policies == (expected or [("tenant_isolation",)]), table


def test_pending_invalidations_are_read_by_every_tenant_and_written_by_their_own_only():
    """Any process finds every tenant's pending cache invalidations without the unscoped role;
    one SQL injection cannot delete, move or forge another tenant's (ai/cache/invalidation.py)."""
    a, b = make_tenant(), make_tenant()
    with tenant_scope(b):
        (row_b,) = _fetch(
            "INSERT INTO ai_pendinginvalidation (tenant_id, created_at) VALUES (%s, now()) RETURNING id", [b.pk]
        )
    assert _fetch("SELECT id, tenant_id FROM ai_pendinginvalidation") == [(row_b[0], b.pk)]  # no scope: read
    with tenant_scope(a):
        assert _fetch("SELECT tenant_id FROM ai_pendinginvalidation") == [(b.pk,)]
        assert _fetch("DELETE FROM ai_pendinginvalidation RETURNING id") == []
        assert _fetch("UPDATE ai_pendinginvalidation SET created_at = now() RETURNING id") == []
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            _fetch("INSERT INTO ai_pendinginvalidation (tenant_id, created_at) VALUES (%s, now()) RETURNING id", [b.pk])
    with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
        _fetch("INSERT INTO ai_pendinginvalidation (tenant_id, created_at) VALUES (%s, now()) RETURNING id", [a.pk])
    assert _fetch("DELETE FROM ai_pendinginvalidation RETURNING id") == []  # no scope: no write
    with tenant_scope(b):
        assert _fetch("DELETE FROM ai_pendinginvalidation RETURNING id") == [row_b]


def test_raw_sql_sees_nothing_without_a_tenant():
    a = make_tenant()
    make_key(a)
    with transaction.atomic():
        assert _fetch("SELECT count(*) FROM tenants_apikey") == [(0,)]


def test_raw_sql_sees_only_the_current_tenant():
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    make_key(b)
    make_key(b)
    with tenant_scope(a):
        assert _fetch("SELECT id, tenant_id FROM tenants_apikey") == [(key_a.pk, a.pk)]
    with tenant_scope(b):
        assert _fetch("SELECT count(*) FROM tenants_apikey WHERE tenant_id = %s", [a.pk]) == [(0,)]
        assert _fetch("SELECT count(*) FROM tenants_apikey") == [(2,)]
    with unscoped_scope():  # raw SQL of unscoped work goes to its own connection
        assert _fetch("SELECT count(*) FROM tenants_apikey", using=UNSCOPED_ALIAS) == [(3,)]
        assert _fetch("SELECT count(*) FROM tenants_apikey") == [(0,)]


def test_writes_into_another_tenant_are_rejected():
    a, b = make_tenant(), make_tenant()
    with tenant_scope(a), pytest.raises(ProgrammingError, match="row-level security"):
        with transaction.atomic():
            _fetch(
                "INSERT INTO tenants_apikey (tenant_id, name, prefix, hashed_key, created_at) "
                "VALUES (%s, 'x', 'abcdefgh', 'h', now()) RETURNING id",
                [b.pk],
            )


def test_updates_cannot_move_rows_to_another_tenant():
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    with tenant_scope(a), pytest.raises((ProgrammingError, IntegrityError)):
        with transaction.atomic():
            _fetch("UPDATE tenants_apikey SET tenant_id = %s WHERE id = %s RETURNING id", [b.pk, key_a.pk])


def test_the_application_role_cannot_switch_the_escape_hatch_on():
    """One SQL injection through the application's connection must stay inside its tenant:
    no setting it writes, no role it takes and no function it rewrites opens other tenants' rows."""
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    make_key(b)
    with tenant_scope(a):
        _fetch("SELECT set_config('app.rls_bypass', 'on', true)")  # the old escape hatch
        _fetch("SELECT set_config('app.tenant_id', '', true)")
        assert _fetch("SELECT count(*) FROM tenants_apikey") == [(0,)]
    for attack in (
        "SET ROLE saascore_unscoped",
        "SET SESSION AUTHORIZATION saascore_unscoped",
        "CREATE OR REPLACE FUNCTION saascore_rls_unscoped() RETURNS boolean LANGUAGE sql AS 'SELECT true'",
        "ALTER TABLE tenants_apikey NO FORCE ROW LEVEL SECURITY",
    ):
        with pytest.raises(ProgrammingError), transaction.atomic():
            _fetch(attack)
    with tenant_scope(a):
        assert _fetch("SELECT id FROM tenants_apikey") == [(key_a.pk,)]


def test_unscoped_work_runs_as_its_own_role_on_its_own_connection():
    from django.conf import settings

    with unscoped_scope():
        assert _fetch("SELECT current_user", using=UNSCOPED_ALIAS) == [(settings.SAASCORE_DB_UNSCOPED_ROLE,)]
    assert _fetch("SELECT current_user") == [(settings.SAASCORE_DB_APP_ROLE,)]


def test_a_migrations_global_rows_leave_rls_forced_on_a_fresh_database():
    """``owner_writes`` (a data migration writing rows RLS would refuse) inserts rows whose
    foreign keys are checked at commit; FORCE must come back all the same. On a fresh
    database ``migrate`` failed here ("pending trigger events"), so a fresh clone's tests
    could not even create their database."""
    from django.conf import settings

    from tenants.rls import owner_writes

    tenant = make_tenant()
    default = connections["default"]
    test_database = default.settings_dict["NAME"]
    owner = type(default)({**default.settings_dict, **settings.SAASCORE_DB_OWNER, "NAME": test_database})
    try:
        owner.set_autocommit(False)
        with owner.schema_editor(atomic=False) as editor, owner_writes(editor, "ai_routerule"):
            editor.execute(
                "INSERT INTO ai_routerule (tenant_id, intent, complexity, model, fallbacks, updated_at) "
                "VALUES (%s, 'chat', 'low', 'gpt-4o-mini', '[]', now())",
                [tenant.pk],
            )
        with owner.cursor() as cursor:
            cursor.execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'ai_routerule'")
            assert cursor.fetchone() == (True,)
    finally:
        owner.rollback()
        owner.close()
