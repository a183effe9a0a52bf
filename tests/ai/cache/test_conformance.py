"""One conformance suite for every vector backend: vector sets, RediSearch, and
vector sets on a three-master Redis Cluster."""

import numpy as np
import pytest

from ai.cache.entries import CacheEntry
from ai.cache.judge import HitJudge
from ai.cache.keys import CacheScope, query_hash
from tests.ai.cache.vectors import at_cosine, vec

TTL = 300


def _store(cache, scope, query, vector, response="an answer", ttl=TTL, **fields):
    generation = cache.lookup_exact(scope, query).generation
    stored = cache.store(
        scope, generation, CacheEntry(query=query, response=response, **fields), ttl=ttl, vector=vector
    )
    assert stored.stored, stored
    return generation


def _semantic(cache, scope, query, vector, threshold=0.9):
    generation = cache.lookup_exact(scope, query).generation
    return cache.lookup_semantic(scope, generation, query, vector, threshold)


def test_exact_tier_matches_normalised_text(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    _store(cache, scope, "How do I reset my password?", vec("pw"), model="gpt-4o-mini", input_tokens=10)
    for asked in ["How do I reset my password?", "  how do i RESET my   password ", "How do I reset my password!!"]:
        found = cache.lookup_exact(scope, asked)
        assert found.hit and found.hit.tier == "exact", asked
        assert found.hit.entry.response == "an answer" and found.hit.entry.model == "gpt-4o-mini"
        assert found.hit.entry.input_tokens == 10
    assert not cache.lookup_exact(scope, "How do I reset my username?").hit


def test_semantic_tier_finds_the_nearest_entry_above_the_threshold(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    base = vec("refund")
    _store(cache, scope, "Can I get a refund?", base, response="Yes, within 30 days.")
    _store(cache, scope, "What are your opening hours?", vec("hours"), response="9 to 5.")
    found = _semantic(cache, scope, "Is a refund possible?", at_cosine(base, 0.95))
    assert found.hit and found.hit.tier == "semantic"
    assert found.hit.entry.response == "Yes, within 30 days."
    assert found.hit.similarity == pytest.approx(0.95, abs=1e-4)
    assert found.hit.threshold == 0.9


@pytest.mark.parametrize("cosine", [0.80, 0.87, 0.93])
def test_a_threshold_means_the_same_cosine_on_every_backend(cache, tenant_ids, cosine):
    scope = CacheScope(tenant_ids(), "emb")
    base = vec(f"base-{cosine}")
    _store(cache, scope, "stored question", base)
    query = at_cosine(base, cosine)
    assert _semantic(cache, scope, "asked question", query, threshold=cosine - 0.002).hit
    missed = _semantic(cache, scope, "asked question", query, threshold=cosine + 0.002)
    assert not missed.hit and missed.reason == "below_threshold"
    assert missed.similarity == pytest.approx(cosine, abs=1e-4)


def test_a_tenant_never_hits_another_tenants_entry(cache, tenant_ids):
    a, b = tenant_ids(), tenant_ids()
    query, vector = "What is the admin password?", vec("secret")
    _store(cache, CacheScope(a, "emb", "user-1"), query, vector, response="tenant A's answer")
    other = CacheScope(b, "emb", "user-1")  # same query, same end-user id, other tenant
    assert not cache.lookup_exact(other, query).hit
    assert not _semantic(cache, other, query, vector, threshold=0.5).hit


def test_end_user_scope_and_embedder_scope_are_isolated(cache, tenant_ids):
    tenant = tenant_ids()
    query, vector = "my open tickets", vec("tickets")
    _store(cache, CacheScope(tenant, "emb", "alice"), query, vector)
    for other in [
        CacheScope(tenant, "emb", "bob"),
        CacheScope(tenant, "emb"),
        CacheScope(tenant, "other-emb", "alice"),
    ]:
        assert not cache.lookup_exact(other, query).hit, other
        assert not _semantic(cache, other, query, vector, threshold=0.5).hit, other
    assert cache.lookup_exact(CacheScope(tenant, "emb", "alice"), query).hit


def test_invalidate_stops_every_old_entry_at_once(cache, tenant_ids):
    tenant = tenant_ids()
    scopes = [CacheScope(tenant, "emb"), CacheScope(tenant, "emb", "carol")]
    for scope in scopes:
        _store(cache, scope, "Which plan includes SSO?", vec("sso"), response="old answer")
    bystander = CacheScope(tenant_ids(), "emb")
    _store(cache, bystander, "Which plan includes SSO?", vec("sso"), response="bystander")

    before = cache.lookup_exact(scopes[0], "x").generation
    after = cache.invalidate(tenant)
    assert after > before

    for scope in scopes:
        assert not cache.lookup_exact(scope, "Which plan includes SSO?").hit
        assert not _semantic(cache, scope, "Which plan includes SSO?", vec("sso"), threshold=0.5).hit
    # other tenants keep their entries; new answers are cached under the new generation
    assert cache.lookup_exact(bystander, "Which plan includes SSO?").hit
    _store(cache, scopes[0], "Which plan includes SSO?", vec("sso"), response="new answer")
    assert cache.lookup_exact(scopes[0], "Which plan includes SSO?").hit.entry.response == "new answer"
    assert _semantic(cache, scopes[0], "SSO plan?", vec("sso")).hit.entry.response == "new answer"


def test_an_answer_computed_before_invalidation_never_serves_after_it(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "q").generation  # the request reads the generation...
    cache.invalidate(scope.tenant_id)  # ...documents change while it calls the LLM...
    cache.store(scope, generation, CacheEntry(query="q", response="stale"), ttl=TTL, vector=vec("q"))
    assert not cache.lookup_exact(scope, "q").hit
    assert not _semantic(cache, scope, "q", vec("q")).hit


def test_entries_expire_and_hits_do_not_extend_them(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    _store(cache, scope, "ttl question", vec("ttl"), ttl=120)
    key = scope.entry_key(query_hash("ttl question"))
    ttl_before = cache.client.pttl(key)
    assert 0 < ttl_before <= 120_000
    assert cache.lookup_exact(scope, "ttl question").hit
    assert _semantic(cache, scope, "ttl question?", vec("ttl")).hit
    assert cache.client.pttl(key) <= ttl_before


def test_members_whose_entry_expired_are_removed_when_met(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    generation = _store(cache, scope, "gone soon", vec("gone"))
    _store(cache, scope, "stays", vec("stays"))
    cache.client.delete(scope.entry_key(query_hash("gone soon")))  # as if its TTL ran out
    assert not _semantic(cache, scope, "gone soon", vec("gone")).hit
    if cache.index.name == "vectorset":
        members = cache.client.execute_command("VCARD", scope.vectorset_key(generation))
        assert members == 1


def test_personal_data_is_never_stored(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "x").generation
    for query, response in [
        ("Email me at jane.doe@example.com", "ok"),
        ("What is my balance?", "Card 4111 1111 1111 1111 has $20"),
        ("Pay to DE89 3704 0044 0532 0130 00", "done"),
        ("Call me on +44 20 7946 0958", "ok"),
    ]:
        result = cache.store(scope, generation, CacheEntry(query=query, response=response), ttl=TTL, vector=vec(query))
        assert not result.stored and result.reason.startswith("personal_data"), query
        assert not cache.lookup_exact(scope, query).hit


def test_every_key_carries_the_tenant_hash_tag(cache, tenant_ids):
    tenant = tenant_ids()
    scope = CacheScope(tenant, "emb", "dave")
    _store(cache, scope, "tagged", vec("tagged"))
    keys = [k.decode() for k in cache.client.scan_iter(match=f"*{tenant}*", count=1000)]
    assert keys and all(k.startswith(f"{{t:{tenant}}}:") for k in keys)
    slots = {cache.client.execute_command("CLUSTER", "KEYSLOT", k) for k in keys} if _is_cluster(cache) else set()
    assert len(slots) <= 1


def test_stored_vectors_are_float32_and_normalised_similarity_is_exact(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    v = vec("exact")
    _store(cache, scope, "exact sim", v)
    found = _semantic(cache, scope, "exact sim", v.astype(np.float64))
    assert found.hit.similarity == pytest.approx(1.0, abs=1e-5)


def _is_cluster(cache) -> bool:
    return cache.client.__class__.__name__ == "RedisCluster"


def test_store_many_warms_the_cache_and_skips_personal_data(cache, tenant_ids):
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "x").generation
    entries = [(CacheEntry(query=f"faq question {n}", response=f"answer {n}"), vec(f"faq {n}")) for n in range(30)]
    entries.append((CacheEntry(query="mail me at a@b.example", response="ok"), vec("pii")))
    assert cache.store_many(scope, generation, entries, ttl=TTL, batch=7) == 30
    assert cache.lookup_exact(scope, "faq question 17").hit.entry.response == "answer 17"
    assert _semantic(cache, scope, "faq question 23", vec("faq 23")).hit.entry.response == "answer 23"
    assert not cache.lookup_exact(scope, "mail me at a@b.example").hit


def test_a_question_between_two_cached_questions_about_different_things_is_ambiguous(cache, tenant_ids):
    """Cached A and B are far apart (cosine 0.80); the question is 0.955 from A and 0.939 from B:
    within the margin of both, it may mean either, so neither answers it."""
    cache.judge = HitJudge(ambiguity_margin=0.05)
    scope = CacheScope(tenant_ids(), "emb")
    a = vec("airplane")
    b = at_cosine(a, np.cos(0.65), salt="train")
    plane = (b - np.cos(0.65) * a) / np.sin(0.65)  # the unit vector that, with a, spans a and b
    between = (np.cos(0.30) * a + np.sin(0.30) * plane).astype(np.float32)
    _store(cache, scope, "Can I catch it on an airplane?", a, response="Airplanes: ...", extra={"about": [1]})
    _store(cache, scope, "Can I catch it on a train?", b, response="Trains: ...", extra={"about": [2]})

    found = _semantic(cache, scope, "Can I catch it while travelling?", between)
    assert not found.hit and found.reason == "ambiguous"
    assert found.similarity == pytest.approx(np.cos(0.30), abs=1e-4)
    near_a = (np.cos(0.10) * a + np.sin(0.10) * plane).astype(np.float32)  # 0.995 from A, 0.878 from B
    assert _semantic(cache, scope, "Can I catch it on a plane?", near_a).hit.entry.response == "Airplanes: ..."
