import pytest

from tenants.models import ApiKey, Membership
from tenants.scoping import TenantScopeError, current_tenant_id, tenant_scope, unscoped_scope
from tests.factories import make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection


def test_default_manager_refuses_queries_without_a_tenant():
    with pytest.raises(TenantScopeError, match="needs a tenant"):
        ApiKey.objects.all()
    with pytest.raises(TenantScopeError):
        Membership.objects.filter(role="owner")
    with pytest.raises(TenantScopeError):
        ApiKey.objects.count()


def test_for_tenant_sees_only_that_tenant():
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    make_key(b)
    with tenant_scope(a):
        assert list(ApiKey.objects.for_tenant(a)) == [key_a]


def test_a_query_for_another_tenant_inside_a_scope_is_refused():
    a, b = make_tenant(), make_tenant()
    with tenant_scope(a), pytest.raises(TenantScopeError, match="inside the scope"):
        ApiKey.objects.for_tenant(b)


def test_unscoped_is_the_explicit_escape_hatch():
    a, b = make_tenant(), make_tenant()
    make_key(a)
    make_key(b)
    with unscoped_scope():
        assert {k.tenant_id for k in ApiKey.objects.unscoped()} == {a.pk, b.pk}


def test_scopes_nest_and_restore():
    a, b = make_tenant(), make_tenant()
    make_key(a)
    make_key(b)
    with tenant_scope(a):
        assert current_tenant_id() == a.pk
        with unscoped_scope():
            assert ApiKey.objects.unscoped().count() == 2
        # back in a's scope: the database again shows a's rows only
        assert current_tenant_id() == a.pk
        assert ApiKey.objects.unscoped().count() == 1
    assert current_tenant_id() is None


def test_tenant_scope_needs_a_tenant_or_its_id():
    with pytest.raises(TenantScopeError):
        with tenant_scope("acme"):
            pass


def test_inside_a_scope_the_default_manager_follows_it():
    a, b = make_tenant(), make_tenant()
    key_a, _ = make_key(a)
    key_b, _ = make_key(b)
    with tenant_scope(a):
        assert list(ApiKey.objects.all()) == [key_a]
    with tenant_scope(b):
        assert list(ApiKey.objects.all()) == [key_b]
    with unscoped_scope():
        assert ApiKey.objects.count() == 2
    with pytest.raises(TenantScopeError):
        ApiKey.objects.all()
