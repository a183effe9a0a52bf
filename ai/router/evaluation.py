"""Evaluate the local router on intent-labelled queries (CLINC150 format).

Labels are mapped to the router's intents through the data set's domains
(``domains.json``: domain -> intents) and the table below; ``oos`` is
out-of-scope, our ``error``. Examples come from the training file only.
"""

import itertools
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai.router.decisions import Intent
from ai.router.local import Example, ExampleSet, route_locally, share_weights

DOMAIN_INTENTS = {
    "small_talk": Intent.CHAT,
    "meta": Intent.CHAT,
    "utility": Intent.ANALYSIS,
    "banking": Intent.RETRIEVAL,
    "credit_cards": Intent.RETRIEVAL,
    "kitchen_and_dining": Intent.RETRIEVAL,
    "home": Intent.RETRIEVAL,
    "auto_and_commute": Intent.RETRIEVAL,
    "travel": Intent.RETRIEVAL,
    "work": Intent.RETRIEVAL,
}
OUT_OF_SCOPE = "oos"
OUT_OF_SCOPE_MIX = 0.18  # CLINC150's test split: 1,000 out-of-scope queries of 5,500


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str  # the data set's own intent
    intent: Intent  # ours


def label_map(domains_file: Path) -> dict[str, Intent]:
    domains = json.loads(domains_file.read_text())
    mapping = {intent: DOMAIN_INTENTS[domain] for domain, intents in domains.items() for intent in intents}
    mapping[OUT_OF_SCOPE] = Intent.ERROR
    return mapping


def load(path: Path, mapping: dict[str, Intent]) -> list[Labelled]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(Labelled(row["text"], row["intent"], mapping[row["intent"]]))
    return rows


def draw_examples(rows: list[Labelled], per_intent: int, seed: int = 0) -> list[Labelled]:
    """Up to ``per_intent`` rows of each of the data set's intents (all of ``oos``)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Labelled]] = defaultdict(list)
    for row in rows:
        by_label[row.label].append(row)
    drawn = []
    for label, group in sorted(by_label.items()):
        if label == OUT_OF_SCOPE or len(group) <= per_intent:
            drawn.extend(group)
        else:
            drawn.extend(group[i] for i in sorted(rng.choice(len(group), per_intent, replace=False)))
    return drawn


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high) if low > 0 else (confidence >= low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def _route_all(examples: ExampleSet, vectors: np.ndarray) -> tuple[list[Intent], list[float], list[float]]:
    predicted, confidences, latencies = [], [], []
    for vector in vectors:
        started = time.perf_counter()
        vote, confidence = route_locally(examples, vector)
        latencies.append((time.perf_counter() - started) * 1000)
        predicted.append(vote.intent)
        confidences.append(confidence)
    return predicted, confidences, latencies


def evaluate(examples: ExampleSet, rows: list[Labelled], vectors: np.ndarray) -> dict:
    predicted, confidences, latencies = _route_all(examples, vectors)
    result = scores([row.intent for row in rows], predicted, np.array(confidences))
    result["latency_ms"] = {f"p{q}": round(float(np.percentile(latencies, q)), 4) for q in (50, 95, 99)}
    return result


def scores(truth: list[Intent], predicted: list[Intent], confidence: np.ndarray) -> dict:
    correct = np.array([p == t for p, t in zip(predicted, truth, strict=True)], dtype=float)
    in_scope = np.array([t != Intent.ERROR for t in truth])
    per_intent = {}
    counts = Counter(truth)
    for intent in Intent:
        tp = sum(1 for p, t in zip(predicted, truth, strict=True) if p == t == intent)
        predicted_n = sum(1 for p in predicted if p == intent)
        per_intent[str(intent)] = {
            "support": counts.get(intent, 0),
            "precision": round(tp / predicted_n, 4) if predicted_n else 0.0,
            "recall": round(tp / counts[intent], 4) if counts.get(intent) else 0.0,
        }
    return {
        "queries": len(truth),
        "accuracy": round(float(correct.mean()), 4),
        "in_scope_accuracy": round(float(correct[in_scope].mean()), 4) if in_scope.any() else None,
        "out_of_scope_recall": round(float(correct[~in_scope].mean()), 4) if (~in_scope).any() else None,
        "per_intent": per_intent,
        "expected_calibration_error": round(expected_calibration_error(confidence, correct), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
    }


def cross_validate(rows: list[Labelled], vectors: np.ndarray, per_intent: int, folds: int, seed: int = 0) -> dict:
    """k-fold cross-validation on training rows alone: each fold's queries (``oos`` included)
    routed by examples drawn from the other folds. Also scored at OUT_OF_SCOPE_MIX, the
    out-of-scope share of CLINC's test split, by weighting (a resample of the same answers)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(rows), dtype=int)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_label[row.label].append(index)
    for indices in by_label.values():
        shuffled = rng.permutation(indices)
        fold[shuffled] = np.arange(len(shuffled)) % folds
    truth, predicted, confidences = [], [], []
    for held in range(folds):
        others = [rows[i] for i in np.flatnonzero(fold != held)]
        examples = example_set_of(draw_examples(others, per_intent, seed), rows, vectors)
        scored = np.flatnonzero(fold == held)
        p, c, _ = _route_all(examples, vectors[scored])
        truth += [rows[i].intent for i in scored]
        predicted += p
        confidences += c
    result = scores(truth, predicted, np.array(confidences))
    out = np.array([t == Intent.ERROR for t in truth])
    if out.any() and (~out).any():
        weights = share_weights(out, OUT_OF_SCOPE_MIX)
        sample = rng.choice(len(truth), 20000, p=weights / weights.sum())
        mixed = scores([truth[i] for i in sample], [predicted[i] for i in sample], np.array(confidences)[sample])
        result["at_out_of_scope_mix"] = {
            "out_of_scope_share": OUT_OF_SCOPE_MIX,
            **{k: mixed[k] for k in ("accuracy", "expected_calibration_error", "mean_confidence")},
        }
    result["folds"] = folds
    return result


def example_set_of(drawn: list[Labelled], rows: list[Labelled], vectors: np.ndarray) -> ExampleSet:
    """The example set of ``drawn`` (rows of ``rows``), with their vectors taken from ``vectors``
    (aligned with ``rows``)."""
    index = {id(row): i for i, row in enumerate(rows)}
    return example_set(drawn, vectors[[index[id(row)] for row in drawn]])


def example_set(rows: list[Labelled], vectors: np.ndarray) -> ExampleSet:
    return ExampleSet([Example(row.text, row.intent) for row in rows], vectors)
