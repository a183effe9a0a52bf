"""The rules of tenants/access.py: who sees and who manages which tenant."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.http import Http404
from django.test import RequestFactory

from ai.rag.models import Document
from tenants.access import (
    EVERY_TENANT,
    NO_TENANT,
    TenantSet,
    is_operator,
    request_tenants_managed,
    tenants_managed_by,
    tenants_visible_to,
    visible_tenant_or_404,
)
from tenants.models import Membership, Tenant
from tenants.scoping import tenant_scope, unscoped_scope
from tenants.services import membership_set
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection


def _user(name: str, **flags):
    return get_user_model().objects.create_user(name, password="pw", **flags)


def _suspended() -> Tenant:
    tenant = make_tenant()
    Tenant.objects.filter(pk=tenant.pk).update(active=False)
    return tenant


def _ids(*tenants: Tenant) -> TenantSet:
    return TenantSet(ids=frozenset(t.pk for t in tenants))


def test_an_operator_is_an_active_superuser_and_nothing_else():
    everything = Group.objects.create(name="every permission")
    everything.permissions.set(Permission.objects.all())
    staff_with_every_permission = _user("helpful", is_staff=True)
    staff_with_every_permission.groups.add(everything)
    staff_with_every_permission = get_user_model().objects.get(pk=staff_with_every_permission.pk)
    assert staff_with_every_permission.has_perm("billing.change_tenantbudget")

    assert is_operator(get_user_model().objects.create_superuser("op", password="pw"))
    assert not is_operator(get_user_model().objects.create_superuser("gone", password="pw", is_active=False))
    assert not is_operator(_user("staff", is_staff=True))
    assert not is_operator(staff_with_every_permission)
    assert not is_operator(AnonymousUser())


def test_operators_see_and_manage_every_tenant_even_an_inactive_one():
    active, inactive = make_tenant(), _suspended()
    operator = get_user_model().objects.create_superuser("op", password="pw")
    membership_set(tenant=active, user=operator, role=Membership.Role.VIEWER)  # a membership narrows nothing
    assert tenants_visible_to(operator) == EVERY_TENANT == tenants_managed_by(operator)
    assert {active.pk, inactive.pk} <= set(tenants_managed_by(operator).tenants().values_list("pk", flat=True))


def test_staff_without_a_membership_see_and_manage_nothing():
    make_tenant()
    stray = _user("former-admin", is_staff=True)
    assert tenants_visible_to(stray) == NO_TENANT == tenants_managed_by(stray)
    assert not tenants_managed_by(stray).tenants().exists()


def test_members_see_their_tenants_and_manage_those_where_they_are_owner_or_admin():
    owned, administered, viewed, elsewhere = make_tenant(), make_tenant(), make_tenant(), make_tenant()
    user = _user("member", is_staff=True)
    membership_set(tenant=owned, user=user, role=Membership.Role.OWNER)
    membership_set(tenant=administered, user=user, role=Membership.Role.ADMIN)
    membership_set(tenant=viewed, user=user, role=Membership.Role.VIEWER)
    membership_set(tenant=elsewhere, user=_user("someone-else"), role=Membership.Role.OWNER)

    assert tenants_visible_to(user) == _ids(owned, administered, viewed)
    assert tenants_managed_by(user) == _ids(owned, administered)
    assert elsewhere not in tenants_visible_to(user) and viewed not in tenants_managed_by(user)


def test_an_inactive_tenant_or_user_opens_nothing():
    suspended, live = _suspended(), make_tenant()
    user = _user("admin", is_staff=True)
    membership_set(tenant=suspended, user=user, role=Membership.Role.ADMIN)
    membership_set(tenant=live, user=user, role=Membership.Role.ADMIN)
    assert tenants_managed_by(user) == _ids(live) == tenants_visible_to(user)
    user.is_active = False
    assert tenants_managed_by(user) == NO_TENANT == tenants_visible_to(user)
    assert tenants_visible_to(AnonymousUser()) == NO_TENANT


def test_a_tenant_set_filters_rows_and_an_empty_one_filters_out_everything():
    mine, theirs = make_tenant(), make_tenant()
    for tenant in (mine, theirs):
        with tenant_scope(tenant):
            Document.objects.create(tenant=tenant, title=f"doc of {tenant.slug}", content="x")
    with unscoped_scope():
        titles = {
            name: set(Document.objects.unscoped().filter(tenants.q()).values_list("title", flat=True))
            for name, tenants in {"mine": _ids(mine), "none": NO_TENANT, "every": EVERY_TENANT}.items()
        }
    assert titles["mine"] == {f"doc of {mine.slug}"}
    assert titles["none"] == set()
    assert titles["every"] >= {f"doc of {mine.slug}", f"doc of {theirs.slug}"}
    assert _ids(mine).single == mine.pk and EVERY_TENANT.single is None and _ids(mine, theirs).single is None
    assert mine in _ids(mine) and mine.pk in _ids(mine) and theirs not in _ids(mine)
    assert None not in EVERY_TENANT  # a global row (tenant NULL) is nobody's tenant
    assert not NO_TENANT and EVERY_TENANT and _ids(mine)


def test_the_request_remembers_the_answer_for_its_user_only():
    tenant = make_tenant()
    admin, other = _user("admin", is_staff=True), _user("other", is_staff=True)
    membership_set(tenant=tenant, user=admin, role=Membership.Role.ADMIN)
    request = RequestFactory().get("/admin/")
    request.user = admin
    assert request_tenants_managed(request) == _ids(tenant)
    request.user = other  # signed in as someone else within the request
    assert request_tenants_managed(request) == NO_TENANT


def test_a_tenant_outside_the_visible_ones_is_404_like_a_missing_one():
    mine, theirs = make_tenant(slug="mine"), make_tenant(slug="theirs")
    user = _user("viewer")
    membership_set(tenant=mine, user=user, role=Membership.Role.VIEWER)
    assert visible_tenant_or_404(user, slug=None) == (mine, [mine])
    assert visible_tenant_or_404(user, slug="mine")[0] == mine
    for slug in ("theirs", "no-such-tenant"):
        with pytest.raises(Http404):
            visible_tenant_or_404(user, slug=slug)
    assert theirs.pk != mine.pk
