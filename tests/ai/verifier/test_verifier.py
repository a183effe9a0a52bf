"""The hit verifier: learns from labelled pairs, is stored and activated by operators, and the live cache obeys it."""

import io
import json
import os

import numpy as np
import pytest
import redis
from django.conf import settings
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
from tests.ai.verifier.pairs import labelled_pairs

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


@pytest.mark.django_db
def test_train_verifier_learns_from_files_and_admin_pairs_and_activates(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(0, 200)))
    LabelledPair.objects.create(text_a="How do I cancel?", text_b="How can I cancel my plan?", same=True)
    LabelledPair.objects.create(text_a="How do I cancel?", text_b="How do I upgrade?", same=False)
    out = io.StringIO()
    call_command("train_verifier", train=[data], activate=True, json=True, stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["pairs"] == 202 and result["active"] is True
    first = VerifierModel.objects.get(pk=result["id"])
    call_command("train_verifier", train=[data], activate=True, json=True, stdout=io.StringIO(), stderr=io.StringIO())
    assert list(VerifierModel.objects.filter(active=True)) != [first]
    assert VerifierModel.objects.filter(active=True).count() == 1


@pytest.mark.django_db
def test_train_verifier_needs_pairs(tmp_path):
    with pytest.raises(CommandError, match="at least 50"):
        call_command("train_verifier", no_admin_pairs=True, stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="No such file"):
        call_command("train_verifier", train=[tmp_path / "missing.jsonl"])


@pytest.mark.django_db
def test_the_live_cache_follows_the_operators_active_verifier(trained, monkeypatch):
    """Activating a verifier turns a borderline semantic hit into a miss; retiring it brings the hit back."""
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
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

    record = VerifierModel.objects.create(
        embedder_id=embedder.id, blob=trained.to_bytes(), min_score=1.01, verify_below=0.999, active=True
    )
    refused = cache.lookup_semantic(scope, generation, asked, vectors[1], threshold)
    assert refused.hit is None and refused.reason == "verifier_rejected"

    record.active = False
    record.save()
    assert cache.lookup_semantic(scope, generation, asked, vectors[1], threshold).hit is not None


@pytest.mark.django_db
def test_a_verifier_from_another_embedder_is_not_used(trained, monkeypatch):
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.0)
    other = TrainedVerifier.from_bytes(trained.to_bytes())
    other.embedder_id = "openai:other"
    VerifierModel.objects.create(embedder_id="openai:other", blob=other.to_bytes(), min_score=1.01, active=True)
    assert ActiveVerifier().verify("a", "b", 0.9) is None
