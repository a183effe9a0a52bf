"""The hit verifier: learns from labelled pairs, is stored and activated by operators, and the live cache obeys it."""

import io
import json
import os

import numpy as np
import pytest
import redis
from django.core.management import CommandError, call_command

from ai.cache import build_cache
from ai.cache.entries import CacheEntry
from ai.cache.judge import HitJudge
from ai.cache.keys import CacheScope
from ai.embeddings import get_embedder
from ai.verifier import live
from ai.verifier.learn import TrainedVerifier, fit_verifier, precision_cutoff
from ai.verifier.live import ActiveVerifier, PairVerifier
from ai.verifier.models import LabelledPair, VerifierModel
from tenants.scoping import tenant_scope, unscoped_scope
from tests.ai.verifier.pairs import labelled_pairs
from tests.factories import make_tenant

PAIRS = labelled_pairs()  # 200 pairs


def _pairs(offset: int, count: int) -> list[dict]:
    return PAIRS[offset : offset + count]


@pytest.fixture(scope="module")
def trained() -> TrainedVerifier:
    rows = _pairs(0, 140)
    embedder = get_embedder()
    pairs = [(r["text_a"], r["text_b"]) for r in rows]
    vectors = embedder.embed([t for p in pairs for t in p]).vectors
    cosines = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])
    return fit_verifier(pairs, [r["label"] for r in rows], cosines, embedder, target_precision=0.8)


def test_precision_cutoff_is_the_lowest_score_reaching_the_target():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 1, 0, 1, 0])
    cutoff, precision, recall = precision_cutoff(scores, labels, 0.75)
    assert (cutoff, precision, recall) == (0.6, 0.75, 1.0)
    assert precision_cutoff(scores, np.zeros(5, dtype=int), 0.5) == (1.0, 0.0, 0.0)


def test_a_trained_verifier_separates_same_from_different_questions(trained):
    embedder = get_embedder()
    held_out = _pairs(140, 60)
    pairs = [(r["text_a"], r["text_b"]) for r in held_out]
    vectors = embedder.embed([t for p in pairs for t in p]).vectors
    cosines = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])
    scores = trained.scores(pairs, cosines, embedder)
    labels = np.array([r["label"] for r in held_out])
    assert scores.shape == (60,) and ((scores >= 0) & (scores <= 1)).all()
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.2
    assert 0 < trained.min_score <= 1 and trained.report["calibration_pairs"] == 28


def test_a_stored_verifier_round_trips_and_refuses_other_versions(trained):
    again = TrainedVerifier.from_bytes(trained.to_bytes())
    assert again.min_score == trained.min_score
    trained.feature_version, version = trained.feature_version + 1, trained.feature_version
    try:
        with pytest.raises(ValueError, match="retrain"):
            TrainedVerifier.from_bytes(trained.to_bytes())
    finally:
        trained.feature_version = version


def test_too_few_pairs_are_refused():
    with pytest.raises(ValueError, match="at least 50"):
        fit_verifier([("a", "b")] * 10, [1] * 10, [0.9] * 10, get_embedder())


def test_the_judge_follows_the_verifier_in_its_band_only(trained):
    embedder = get_embedder()
    query, candidate = "How do I reset my password?", "How can I change my password?"
    strict = HitJudge(verifier=PairVerifier(trained, embedder, min_score=1.01, verify_below=0.97))
    lenient = HitJudge(verifier=PairVerifier(trained, embedder, min_score=0.0, verify_below=0.97))
    rejected = strict.judge(query, candidate, 0.9, 0.85)
    assert not rejected.hit and rejected.reason == "verifier_rejected" and rejected.verifier_score is not None
    assert lenient.judge(query, candidate, 0.9, 0.85).reason == "verified"
    assert strict.judge(query, candidate, 0.98, 0.85).reason == "similar"  # above the band: not asked
    assert strict.judge(query, candidate, 0.8, 0.85).reason == "below_threshold"


def _train(**options) -> dict:
    out = io.StringIO()
    call_command("train_verifier", json=True, stdout=out, stderr=io.StringIO(), **options)
    return json.loads(out.getvalue())


def _label(tenant, text_a, text_b, same):
    with tenant_scope(tenant) if tenant else unscoped_scope():
        LabelledPair.objects.create(tenant=tenant, text_a=text_a, text_b=text_b, same=same)


def test_train_verifier_learns_from_files_and_admin_pairs_and_activates(tmp_path, transactional_db):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(0, 200)))
    _label(None, "How do I cancel?", "How can I cancel my plan?", True)
    _label(None, "How do I cancel?", "How do I upgrade?", False)
    result = _train(train=[data], activate=True)
    assert result["pairs"] == 202 and result["active"] is True and result["tenant"] is None
    _train(train=[data], activate=True)
    active = VerifierModel.objects.global_rows().filter(active=True)
    assert active.count() == 1 and active.get().pk != result["id"]


def test_a_tenants_verifier_learns_from_its_own_feedback_only(tmp_path, transactional_db):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(0, 100)))
    alpha, bravo = make_tenant(), make_tenant()
    _label(None, "How do I cancel?", "How can I cancel my plan?", True)
    for n in range(3):
        _label(alpha, f"Where is invoice {n}?", f"Where do I find invoice {n}?", True)
    for n in range(7):
        _label(bravo, f"Bravo secret {n}?", f"Bravo other {n}?", False)
    result = _train(train=[data], tenant=alpha.slug, activate=True)
    assert result["pairs"] == 100 + 1 + 3  # the files, the global pair, alpha's own: never bravo's
    with tenant_scope(alpha):
        assert VerifierModel.objects.filter(active=True).get().tenant_id == alpha.pk
    with tenant_scope(bravo):  # bravo sees no model of alpha's
        assert not VerifierModel.objects.filter(active=True).exists()
    with pytest.raises(CommandError, match="No tenant"):
        _train(train=[data], tenant="no-such-tenant")


def test_each_tenant_is_judged_by_its_own_verifier_else_the_global_one(
    trained, monkeypatch, settings, transactional_db
):
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
    settings.AI = {"DEFAULT_VERIFIER": ""}
    alpha, bravo = make_tenant(), make_tenant()
    embedder = get_embedder()
    blob = trained.to_bytes()
    with unscoped_scope():
        VerifierModel.objects.create(embedder_id=embedder.id, blob=blob, min_score=0.0, active=True)  # accepts all
    with tenant_scope(alpha):
        own = VerifierModel.objects.create(
            tenant=alpha, embedder_id=embedder.id, blob=blob, min_score=1.01, active=True
        )
    pair = ("How do I reset my password?", "How can I change my password?", 0.9)
    assert ActiveVerifier().verify(*pair, tenant_id=alpha.pk).accepted is False  # its own: rejects
    assert ActiveVerifier().verify(*pair, tenant_id=bravo.pk).accepted is True  # the global one
    assert ActiveVerifier().current(alpha.pk).name == f"#{own.pk}"
    with tenant_scope(alpha):
        own.active = False
        own.save()
    assert ActiveVerifier().verify(*pair, tenant_id=alpha.pk).accepted is True


@pytest.mark.django_db
def test_train_verifier_needs_pairs(tmp_path):
    with pytest.raises(CommandError, match="at least 50"):
        call_command("train_verifier", no_admin_pairs=True, stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="No such file"):
        call_command("train_verifier", train=[tmp_path / "missing.jsonl"])


def test_the_live_cache_follows_the_operators_active_verifier(trained, monkeypatch, settings, transactional_db):
    """Activating a verifier turns a borderline semantic hit into a miss; retiring it brings the hit back."""
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
    settings.AI = {"DEFAULT_VERIFIER": ""}
    embedder = get_embedder()
    cache = build_cache(redis.Redis.from_url(settings.REDIS_URL), judge=HitJudge(verifier=ActiveVerifier()))
    scope = CacheScope(int.from_bytes(os.urandom(4), "big"), embedder.id)
    stored, asked = "How can I change my password?", "How do I reset my password?"
    vectors = embedder.embed([stored, asked]).vectors
    similarity = float(vectors[0] @ vectors[1])
    generation = cache.lookup_exact(scope, asked).generation
    cache.store(scope, generation, CacheEntry(query=stored, response="Use the reset link."), ttl=60, vector=vectors[0])
    threshold = similarity - 0.05
    assert cache.lookup_semantic(scope, generation, asked, vectors[1], threshold).hit is not None

    with unscoped_scope():
        record = VerifierModel.objects.create(
            embedder_id=embedder.id, blob=trained.to_bytes(), min_score=1.01, verify_below=0.999, active=True
        )
    refused = cache.lookup_semantic(scope, generation, asked, vectors[1], threshold)
    assert refused.hit is None and refused.reason == "verifier_rejected"

    with unscoped_scope():
        record.active = False
        record.save()
    assert cache.lookup_semantic(scope, generation, asked, vectors[1], threshold).hit is not None


def test_a_verifier_from_another_embedder_is_not_used(trained, monkeypatch, settings, transactional_db):
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
    settings.AI = {"DEFAULT_VERIFIER": ""}
    other = TrainedVerifier.from_bytes(trained.to_bytes())
    other.embedder_id = "openai:other"
    with unscoped_scope():
        VerifierModel.objects.create(embedder_id="openai:other", blob=other.to_bytes(), min_score=1.01, active=True)
    assert ActiveVerifier().verify("a", "b", 0.9) is None


def test_the_flat_trees_give_scikit_learns_probabilities(trained):
    """The live path walks the trees as flat arrays; it must be the model scikit-learn fitted."""
    rng = np.random.default_rng(0)
    features = rng.normal(0.5, 0.5, (300, 31))
    features[::7, 3] = np.nan  # a missing value goes the way the split learned
    assert np.allclose(trained.flat.predict_proba(features), trained.model.predict_proba(features)[:, 1], atol=1e-9)
    again = TrainedVerifier.from_bytes(trained.to_bytes())  # rebuilt after loading, never pickled
    assert "flat" not in again.__dict__ and np.allclose(again.flat.predict_proba(features[:5]),
                                                        trained.flat.predict_proba(features[:5]))  # fmt: skip
