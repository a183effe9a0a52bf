"""Evaluate the cache's hit decision on labelled question pairs.

Runs the live decision code: the configured embedder, the same ``HitJudge``
(threshold, guards, verifier) that ``SemanticCache`` asks about each candidate.
A pair with label 1 judged a hit is a correct hit; label 0 judged a hit is a
false hit.
"""

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ai.cache.judge import HitJudge
from ai.embeddings.base import Embedder

DEFAULT_THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    hits: int
    correct_hits: int
    precision: float
    recall: float
    false_hit_rate: float  # share of label-0 pairs that were judged a hit


def load_pairs(path: Path, limit: int | None = None, offset: int = 0) -> list[Pair]:
    pairs = []
    with path.open() as lines:
        for number, line in enumerate(lines):
            if number < offset or not line.strip():
                continue
            row = json.loads(line)
            pairs.append(Pair(row["text_a"], row["text_b"], int(row["label"])))
            if limit and len(pairs) >= limit:
                break
    return pairs


def pair_vectors(
    embedder: Embedder, pairs: list[Pair], *, batch: int = 64, progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of each pair's two texts, embedding every distinct text once."""
    texts = list(dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)))
    index = {text: i for i, text in enumerate(texts)}
    vectors = np.zeros((len(texts), embedder.dim or 1), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chunk = embedder.embed(texts[start : start + batch]).vectors
        if vectors.shape[1] != chunk.shape[1]:
            vectors = np.zeros((len(texts), chunk.shape[1]), dtype=np.float32)
        vectors[start : start + len(chunk)] = chunk
        if progress:
            progress(min(start + batch, len(texts)), len(texts))
    return vectors[[index[p.text_a] for p in pairs]], vectors[[index[p.text_b] for p in pairs]]


def similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def operating_points(
    judge: HitJudge,
    pairs: list[Pair],
    scores: np.ndarray,
    thresholds: Iterable[float],
    intents: list[tuple[str, str]] | None = None,
) -> list[OperatingPoint]:
    """One point per threshold; ``intents``: the router's intent for each pair's two texts."""
    labels = np.array([p.label for p in pairs])
    intents = intents or [(None, None)] * len(pairs)
    positives, negatives = int(labels.sum()), int((1 - labels).sum())
    points = []
    for threshold in thresholds:
        hits = np.array(
            [
                judge.judge(p.text_a, p.text_b, float(s), threshold, query_intent=ia, candidate_intent=ib).hit
                for p, s, (ia, ib) in zip(pairs, scores, intents, strict=True)
            ]
        )
        correct = int((hits & (labels == 1)).sum())
        false = int((hits & (labels == 0)).sum())
        total = int(hits.sum())
        points.append(
            OperatingPoint(
                threshold=round(float(threshold), 4),
                hits=total,
                correct_hits=correct,
                precision=round(correct / total, 4) if total else 0.0,
                recall=round(correct / positives, 4) if positives else 0.0,
                false_hit_rate=round(false / negatives, 4) if negatives else 0.0,
            )
        )
    return points


def format_table(title: str, points: list[OperatingPoint]) -> str:
    lines = [title, "threshold  hits   precision  recall  false-hit rate"]
    for p in points:
        lines.append(f"{p.threshold:9.2f}  {p.hits:5d}  {p.precision:9.3f}  {p.recall:6.3f}  {p.false_hit_rate:14.3f}")
    return "\n".join(lines)


def as_json(steps: dict[str, list[OperatingPoint]], **meta) -> str:
    return json.dumps({**meta, "steps": {k: [asdict(p) for p in v] for k, v in steps.items()}}, indent=2)


def stderr_progress(label: str, every: float = 0.05) -> Callable[[int, int], None]:
    """Report progress on stderr about every 5%."""
    shown = {"at": -1.0}

    def report(done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        if fraction - shown["at"] >= every or done >= total:
            shown["at"] = fraction
            sys.stderr.write(f"{label}: {done}/{total} ({fraction:.0%})\n")
            sys.stderr.flush()

    return report
