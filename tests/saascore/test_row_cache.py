"""Per-process row caches: an edit in this process applies at once, one made elsewhere within the TTL."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.test import override_settings

from ai.tenant_settings.models import TenantAISettings
from ai.tenant_settings.selectors import settings_for
from saascore.ttl import TTLCache
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


def test_callers_that_find_a_key_cold_wait_for_one_load():
    """A fresh worker under load: many requests need the same cold entry (an example set is
    hundreds of vectors); one of them loads it, the others wait for that load."""
    cache = TTLCache("cold-test", lambda: 60.0)
    loads, entered, release = [], threading.Event(), threading.Event()

    def load():
        loads.append(1)
        entered.set()
        release.wait(timeout=10)
        return "value"

    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(cache.get, "key", load) for _ in range(8)]
        assert entered.wait(timeout=10)
        release.set()
        assert [a.result(timeout=10) for a in answers] == ["value"] * 8
    assert len(loads) == 1
