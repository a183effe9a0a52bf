"""Per-process row caches: an edit in this process applies at once, one made elsewhere within the TTL."""

import pytest
from django.conf import settings
from django.test import override_settings

from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import settings_for
from tenants.scoping import tenant_scope
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


def _ttl(seconds: float):
    return override_settings(AI={**settings.AI, "ROW_CACHE_SECONDS": seconds})


def test_a_save_in_this_process_applies_at_once():
    tenant = make_tenant()
    with _ttl(60):
        assert settings_for(tenant).threshold_standard == 0.90
        with tenant_scope(tenant):
            TenantAISettings.objects.create(tenant=tenant, threshold_standard=0.8)
        assert settings_for(tenant).threshold_standard == 0.8


def test_an_edit_elsewhere_is_seen_once_the_entry_expires():
    tenant = make_tenant()
    with tenant_scope(tenant):
        TenantAISettings.objects.create(tenant=tenant, threshold_standard=0.8)
    with _ttl(60):
        assert settings_for(tenant).threshold_standard == 0.8
        with tenant_scope(tenant):  # an UPDATE sends no signal: as if another worker had made it
            TenantAISettings.objects.for_tenant(tenant).update(threshold_standard=0.85)
        assert settings_for(tenant).threshold_standard == 0.8  # still within the TTL
    with _ttl(0):
        assert settings_for(tenant).threshold_standard == 0.85
