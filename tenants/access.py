"""Who may see and who may manage which tenant: the one place that decides.

The rules (docs/decisions.md, 2026-11-28):

- An **operator** is an active superuser. Operators see and manage every tenant,
  active or not. Nothing else makes an operator: not ``is_staff``, not a Django
  model permission, not having no membership.
- Anyone else **sees** the active tenants where they hold a membership of any
  role (the billing dashboard), and **manages** the active tenants where they are
  owner or admin (the Django admin, which also requires ``is_staff``).
- An inactive user, or an anonymous one, sees and manages nothing.

Every surface asks this module and treats a tenant outside the answer as one
that does not exist: 404, never 403 or a redirect (tenants/SCOPING.md).

What it does not guarantee: it reads the user's memberships across tenants
(``unscoped_scope``, a documented use of the escape hatch); the caller still has
to run its own reads inside the tenant's scope.
"""

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from tenants.models import Membership, Tenant
from tenants.scoping import unscoped_scope

MANAGING_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})
_REQUEST_ATTRIBUTE = "_tenants_managed"


@dataclass(frozen=True)
class TenantSet:
    """Some tenants: every tenant (``every``) or the listed ids. There is no "None means all"."""

    ids: frozenset[int] = frozenset()
    every: bool = False

    def __contains__(self, tenant: object) -> bool:
        if self.every:
            return tenant is not None
        return getattr(tenant, "pk", tenant) in self.ids

    def __bool__(self) -> bool:
        return self.every or bool(self.ids)

    @property
    def single(self) -> int | None:
        """The one tenant's id when the set holds exactly one listed tenant, else None."""
        return next(iter(self.ids)) if not self.every and len(self.ids) == 1 else None

    def q(self, field: str = "tenant") -> Q:
        """A filter on ``field`` (a tenant foreign key, or ``pk`` of Tenant) that keeps this set's rows."""
        return Q() if self.every else Q(**{f"{field}__in": self.ids})

    def tenants(self) -> QuerySet[Tenant]:
        return Tenant.objects.filter(self.q("pk")).order_by("slug")


EVERY_TENANT = TenantSet(every=True)
NO_TENANT = TenantSet()


def is_operator(user) -> bool:
    """Operators run the service for every tenant: active superusers, nobody else."""
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def _member_tenants(user, roles: frozenset[str] | None) -> TenantSet:
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return NO_TENANT
    # A cross-tenant read of the user's own memberships (tenants/SCOPING.md, known bypasses).
    with unscoped_scope():
        memberships = Membership.objects.unscoped().filter(user=user, tenant__active=True)
        if roles is not None:
            memberships = memberships.filter(role__in=roles)
        return TenantSet(ids=frozenset(memberships.values_list("tenant_id", flat=True)))


def tenants_visible_to(user) -> TenantSet:
    """The tenants whose usage, spend and cached questions ``user`` may read."""
    return EVERY_TENANT if is_operator(user) else _member_tenants(user, roles=None)


def tenants_managed_by(user) -> TenantSet:
    """The tenants whose documents, keys and settings ``user`` may manage in the admin."""
    return EVERY_TENANT if is_operator(user) else _member_tenants(user, roles=MANAGING_ROLES)


def request_tenants_managed(request: HttpRequest) -> TenantSet:
    """``tenants_managed_by(request.user)``, read once per request (the admin asks many times)."""
    user = request.user
    cached = getattr(request, _REQUEST_ATTRIBUTE, None)
    if cached is None or cached[0] != user.pk:  # the user may sign in or out during the request
        cached = (user.pk, tenants_managed_by(user))
        setattr(request, _REQUEST_ATTRIBUTE, cached)
    return cached[1]


def visible_tenant_or_404(user, *, slug: str | None) -> tuple[Tenant, list[Tenant]]:
    """The tenant ``slug`` names (or the first visible one) and every tenant ``user`` may see.

    A tenant the user may not see raises Http404, exactly like one that does not exist.
    """
    tenants = list(tenants_visible_to(user).tenants())
    chosen = next((t for t in tenants if t.slug == slug), None) if slug else next(iter(tenants), None)
    if chosen is None:
        raise Http404("No such tenant.")
    return chosen, tenants
