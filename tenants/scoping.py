"""Tenant scoping that fails closed. The contract is in tenants/SCOPING.md.

Two walls:

1. In Python, a tenant-owned model's default manager raises ``TenantScopeError``
   unless the caller says which tenant (``Model.objects.for_tenant(t)``) or that
   it means every tenant (``Model.objects.unscoped()``).
2. In PostgreSQL, Row-Level Security on every tenant-owned table shows a
   transaction only the rows of the tenant it set with
   ``set_config('app.tenant_id', ..., true)``; ``tenant_scope`` opens that
   transaction. Outside it the application role sees no tenant-owned row at all,
   and nothing it can set changes that. ``unscoped_scope`` works on a second
   connection, as a role the policies admit (tenants/rls.py).

What it does not guarantee: code that runs raw SQL as the owner or the unscoped
role, or that opens ``unscoped_scope`` for a request it should not, is trusted.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, transaction

TENANT_SETTING = "app.tenant_id"
# The database alias of unscoped work: a second role whose policies admit every
# row (tenants/rls.py). The application role cannot become it or switch it on.
UNSCOPED_ALIAS = "unscoped"


class TenantScopeError(RuntimeError):
    """A tenant-owned query was made without naming a tenant."""


class _Unscoped:
    def __repr__(self) -> str:
        return "<unscoped>"


UNSCOPED = _Unscoped()
_current: ContextVar[int | _Unscoped | None] = ContextVar("saascore_tenant", default=None)


def current_tenant_id() -> int | None:
    """The tenant of the innermost ``tenant_scope``, or None."""
    value = _current.get()
    return value if isinstance(value, int) else None


def is_unscoped() -> bool:
    return _current.get() is UNSCOPED


def _tenant_pk(tenant: object) -> int:
    pk = getattr(tenant, "pk", tenant)
    if not isinstance(pk, int):
        raise TenantScopeError(f"tenant_scope needs a tenant or its integer id, not {tenant!r}")
    return pk


def _set_tenant(using: str, value: int | _Unscoped | None) -> None:
    tenant_id = str(value) if isinstance(value, int) else ""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, tenant_id])


@contextmanager
def _scope(value: int | _Unscoped, using: str) -> Iterator[None]:
    previous = _current.get()
    # Inside an outer transaction on the same connection the setting outlives this
    # block, so a normal exit restores the outer one; on an exception the savepoint
    # rollback does.
    nested = connections[using].in_atomic_block
    token = _current.set(value)
    try:
        with transaction.atomic(using=using):
            _set_tenant(using, value)
            yield
            if nested:
                _set_tenant(using, previous)
    finally:
        _current.reset(token)


def tenant_scope(tenant: object, *, using: str = "default"):
    """A transaction in which the database shows only ``tenant``'s rows.

    Keep network calls (LLM, embeddings, Redis) outside it: it holds a
    transaction open for its whole body.
    """
    return _scope(_tenant_pk(tenant), using)


def unscoped_scope():
    """A transaction that sees every tenant: for the admin, jobs and migrations only.

    It runs on the ``unscoped`` database alias (``DATABASE_UNSCOPED_URL``), whose
    role the RLS policies admit; every ORM query inside it is routed there
    (``ScopeRouter``). It is a different connection from the request's: rows that
    another open transaction wrote are not visible to it until that one commits.
    """
    if UNSCOPED_ALIAS not in connections.settings:
        raise ImproperlyConfigured(
            "unscoped_scope() needs the 'unscoped' database (DATABASE_UNSCOPED_URL): a role that the "
            "row-level security policies admit for cross-tenant work (docs/operations.md)."
        )
    return _scope(UNSCOPED, UNSCOPED_ALIAS)


class ScopeRouter:
    """Database router: inside ``unscoped_scope()`` every query goes to the unscoped
    alias, everywhere else to ``default`` (the application role, under RLS)."""

    def _route(self, model, **hints) -> str:
        return UNSCOPED_ALIAS if _current.get() is UNSCOPED else "default"

    db_for_read = _route
    db_for_write = _route

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints) -> bool:
        return db != UNSCOPED_ALIAS


class TenantQuerySet(models.QuerySet):
    pass


class TenantScopedManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default manager of tenant-owned models: no tenant, no rows, but an error.

    Inside ``tenant_scope(t)`` a plain ``objects.all()`` means t's rows, and
    inside ``unscoped_scope()`` every row, so Django's own uses of the default
    manager (unique validation, the admin) follow the scope the caller opened.
    """

    def get_queryset(self) -> models.QuerySet:
        scope = _current.get()
        if scope is UNSCOPED:
            return super().get_queryset()
        if isinstance(scope, int):
            return super().get_queryset().filter(tenant_id=scope)
        raise TenantScopeError(
            f"{self.model.__name__}.objects needs a tenant: use .for_tenant(tenant) inside tenant_scope(tenant), "
            "or .unscoped() inside unscoped_scope() where every tenant is meant (admin, jobs)."
        )

    def for_tenant(self, tenant: object) -> models.QuerySet:
        tenant_id = _tenant_pk(tenant)
        active = current_tenant_id()
        if active is not None and active != tenant_id:
            raise TenantScopeError(f"query for tenant {tenant_id} inside the scope of tenant {active}")
        return super().get_queryset().filter(tenant_id=tenant_id)

    def unscoped(self) -> models.QuerySet:
        return super().get_queryset()


class TenantOwnedModel(models.Model):
    """Base of every tenant-owned table: ``tenant_id`` first, RLS in its migration."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)

    objects = TenantScopedManager()

    class Meta:
        abstract = True


class SharedScopedManager(TenantScopedManager):
    """Default manager of models whose rows belong to one tenant or to all (tenant NULL).

    Inside ``tenant_scope(t)``, ``objects.all()`` means t's rows and the global
    ones, as Row-Level Security shows them; global rows are written only inside
    ``unscoped_scope()``.
    """

    def get_queryset(self) -> models.QuerySet:
        scope = _current.get()
        if isinstance(scope, int):
            return models.Manager.get_queryset(self).filter(models.Q(tenant_id=scope) | models.Q(tenant__isnull=True))
        return super().get_queryset()

    def visible_to(self, tenant: object) -> models.QuerySet:
        """The tenant's own rows and the global ones."""
        tenant_id = _tenant_pk(tenant)
        return self.for_tenant(tenant_id) | models.Manager.get_queryset(self).filter(tenant__isnull=True)

    def global_rows(self) -> models.QuerySet:
        return models.Manager.get_queryset(self).filter(tenant__isnull=True)


class TenantOrGlobalModel(models.Model):
    """Base of tables with per-tenant rows beside global ones (``tenant`` NULL)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False, null=True, blank=True
    )

    objects = SharedScopedManager()

    class Meta:
        abstract = True
