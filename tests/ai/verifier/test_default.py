"""The verifier shipped with the code: it loads with the pinned scikit-learn and the local embedder,
serves a tenant with no model of its own or of the operators', and tells a paraphrase from a
near-duplicate."""

import pytest

from ai.embeddings import get_embedder
from ai.verifier import live
from ai.verifier.live import ActiveVerifier, default_verifier

PARAPHRASES = [
    ("How do I reset my password?", "How can I change my password?"),
    ("How can I learn Python quickly?", "What is the fastest way to learn Python?"),
]
NEAR_DUPLICATES = [
    ("How long are dogs pregnant?", "How long are cats pregnant?"),
    ("What is the crime rate of Ealing?", "What is the crime rate of Bexley?"),
    ("How do I cancel my subscription?", "How do I cancel my order?"),
]


def _verdict(verifier, query, candidate):
    a, b = get_embedder().embed([query, candidate]).vectors
    return verifier.verify(query, candidate, min(float(a @ b), 0.96))


def test_the_shipped_default_loads_and_tells_paraphrases_from_near_duplicates():
    verifier = default_verifier()
    assert verifier is not None and verifier.name == "default"
    assert 0.5 < verifier.min_score < 0.9 and verifier.verify_below == 0.97
    assert all(_verdict(verifier, q, c).accepted for q, c in PARAPHRASES)
    assert not any(_verdict(verifier, q, c).accepted for q, c in NEAR_DUPLICATES)


@pytest.mark.django_db
def test_a_tenant_with_no_model_is_judged_by_the_default_and_an_operator_can_turn_it_off(monkeypatch, settings):
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
    assert ActiveVerifier().current(tenant_id=424242).name == "default"
    settings.AI = {"DEFAULT_VERIFIER": ""}
    assert ActiveVerifier().current(tenant_id=424242) is None
