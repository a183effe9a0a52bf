"""The exact-match-only switch the end-to-end benchmark uses: AI["SEMANTIC_TIER"] = False."""

import numpy as np
from django.test import override_settings

from ai.cache import get_cache
from ai.cache.entries import CacheEntry
from ai.cache.keys import CacheScope


def test_the_semantic_tier_is_on_by_default():
    assert get_cache().index is not None


@override_settings(AI={"SEMANTIC_TIER": False})
def test_off_the_cache_has_no_vector_index_and_still_answers_exact_repeats():
    cache = get_cache()
    assert cache.index is None
    scope = CacheScope(987_654, "bench-switch")
    generation = cache.lookup_exact(scope, "How do I reset my password?").generation
    vector = np.ones(4, dtype=np.float32) / 2
    entry = CacheEntry(query="How do I reset my password?", response="Use the link.")
    assert cache.store(scope, generation, entry, ttl=60, vector=vector).stored
    assert cache.lookup_exact(scope, "how do I reset my password").hit is not None
    found = cache.lookup_semantic(scope, generation, "How can I reset my password?", vector, 0.5)
    assert found.hit is None and found.reason == "no_vector_api"
    cache.invalidate(scope.tenant_id)
