"""API keys verified in bursts: one verification per process and second, however many requests."""

import asyncio

import pytest

from ai.cache import get_cache
from saascore.redis.guard import shared_guard
from tenants import key_cache
from tests.factories import make_key, make_tenant


@pytest.fixture
def counted(monkeypatch):
    """Every Redis lookup and PostgreSQL verification of a key, counted (both still run)."""
    calls = {"redis": 0, "postgres": 0}
    lookup, verify = key_cache._lookup, key_cache.api_key_verify

    def counted_lookup(*args):
        calls["redis"] += 1
        return (yield from lookup(*args))

    def counted_verify(**kwargs):
        calls["postgres"] += 1
        return verify(**kwargs)

    monkeypatch.setattr(key_cache, "_lookup", counted_lookup)
    monkeypatch.setattr(key_cache, "api_key_verify", counted_verify)
    return calls


def burst(key: str, requests: int = 50) -> list:
    async def run():
        guard = shared_guard()
        return await asyncio.gather(*(key_cache.aapi_key_verify(key=key, guard=guard) for _ in range(requests)))

    return asyncio.run(run())


@pytest.mark.django_db(transaction=True)
def test_a_burst_on_one_key_shares_one_verification(counted):
    tenant = make_tenant(slug="burst")
    api_key, key = make_key(tenant)
    get_cache().invalidate(tenant.pk)  # the tenant has a cache generation: records count against it

    assert {found.pk for found in burst(key)} == {api_key.pk}
    assert counted == {"redis": 1, "postgres": 1}  # nothing in Redis yet: PostgreSQL once, then recorded

    key_cache._local.clear()  # as if its second in memory were over
    assert {found.pk for found in burst(key)} == {api_key.pk}
    assert counted == {"redis": 2, "postgres": 1}  # the Redis record, once

    _, other_key = make_key(make_tenant(slug="burst-other"))
    assert {found.tenant.slug for found in burst(other_key, 5)} == {"burst-other"}
    assert counted == {"redis": 3, "postgres": 2}  # another key is verified for itself


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_a_wrong_secret_costs_postgresql_once(counted):
    _, key = make_key(make_tenant(slug="burst-wrong"))
    assert burst(key[:-4] + "abcd") == [None] * 50
    assert counted == {"redis": 1, "postgres": 1}
