"""A tenant's cache thresholds from its labelled pairs (``eval_cache --tenant --target-precision``).

The standard threshold is the lowest cosine at which the hit decision (guards and the
tenant's verifier included) reaches the target precision on the pairs, so recall is the
highest that precision allows; the strict one (an unsure router) reaches half the error
(else it is the grid's top, 0.99).
Chosen on every pair for ``--apply``; the figures reported beside it come from k-fold
cross-validation (each fold scored at the threshold the other folds chose), since a threshold
scored on the pairs that chose it looks better than it will do.
"""

import random
from dataclasses import asdict, dataclass

import numpy as np

from ai.cache.evaluation import OperatingPoint, Pair, operating_points
from ai.cache.judge import HitJudge

GRID = tuple(round(t, 2) for t in np.arange(0.70, 0.991, 0.01))
MIN_PAIRS = 20  # fewer labelled pairs of a tenant choose nothing


@dataclass(frozen=True)
class Choice:
    standard: float | None  # None: no threshold on the grid reaches the target
    strict: float | None
    chosen_on_all: OperatingPoint | None  # the standard threshold's figures on every pair (optimistic)
    cross_validated: dict  # precision and recall of held-out folds, each at its own fold's choice

    def as_dict(self) -> dict:
        return {**asdict(self), "chosen_on_all": asdict(self.chosen_on_all) if self.chosen_on_all else None}


def lowest_reaching(points: list[OperatingPoint], target: float) -> OperatingPoint | None:
    """The lowest threshold whose hits reach ``target`` precision (the highest recall at it)."""
    reaching = [p for p in points if p.hits and p.precision >= target]
    return min(reaching, key=lambda p: p.threshold) if reaching else None


def stricter(target: float) -> float:
    """The strict threshold's target: half the standard one's share of wrong hits."""
    return 1 - (1 - target) / 2


def choose_thresholds(
    judge: HitJudge, pairs: list[Pair], scores: np.ndarray, target: float, *, folds: int = 5, seed: int = 0
) -> Choice:
    if len(pairs) < MIN_PAIRS or len({p.label for p in pairs}) < 2:
        raise ValueError(f"Choosing thresholds needs at least {MIN_PAIRS} labelled pairs of both kinds")
    points = operating_points(judge, pairs, scores, GRID)
    standard = lowest_reaching(points, target)
    strict = lowest_reaching(points, stricter(target))
    # Unreachable at the grid's top: the strict threshold is the top (an unsure router's hits are rare).
    strict_threshold = strict.threshold if strict else GRID[-1]
    return Choice(
        standard=standard.threshold if standard else None,
        strict=max(strict_threshold, standard.threshold) if standard else None,
        chosen_on_all=standard,
        cross_validated=_cross_validated(judge, pairs, scores, target, folds, seed),
    )


def _cross_validated(
    judge: HitJudge, pairs: list[Pair], scores: np.ndarray, target: float, folds: int, seed: int
) -> dict:
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    hits = correct = positives = 0
    for fold in range(folds):
        held = set(order[fold::folds])
        fit = [i for i in order if i not in held]
        chosen = lowest_reaching(operating_points(judge, [pairs[i] for i in fit], scores[fit], GRID), target)
        held_rows = sorted(held)
        positives += sum(pairs[i].label for i in held_rows)
        if chosen is None:
            continue
        (point,) = operating_points(judge, [pairs[i] for i in held_rows], scores[held_rows], [chosen.threshold])
        hits += point.hits
        correct += point.correct_hits
    return {
        "folds": folds,
        "hits": hits,
        "precision": round(correct / hits, 4) if hits else 0.0,
        "recall": round(correct / positives, 4) if positives else 0.0,
    }
