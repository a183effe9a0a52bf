"""The local router: a weighted vote of the nearest few-shot examples.

It reuses the query embedding the cache already computed, so routing costs a
matrix-vector product over the examples (well under a millisecond), no model
call. Confidence is calibrated: a logistic map from (vote share, nearest
similarity, margin) to the probability that the vote is right, fitted on the
example set itself by leave-one-out, so 0.8 means right about 8 times in 10 on
queries like the examples. A query far from every example is out of scope.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ai.router.decisions import CacheStrategy, Complexity, Intent, Neighbour

K = 10
TEMPERATURE = 0.05
# A query whose nearest example is less similar than this is out of scope. The
# floor adapts to the example set: the similarity that only 2% of in-scope
# examples fall under when each is routed against the others (a dense set of
# examples puts it higher than a sparse one), within these bounds.
OUT_OF_SCOPE_PERCENTILE = 2.0
FLOOR_BOUNDS = (0.15, 0.60)
DEFAULT_FLOOR = 0.35
CALIBRATION_SAMPLE = 2000


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    complexity: str = Complexity.MEDIUM
    cache_strategy: str = CacheStrategy.STANDARD
    scope: str = "global"


@dataclass
class Vote:
    intent: Intent
    complexity: Complexity
    cache_strategy: CacheStrategy
    share: float
    nearest: float
    margin: float
    neighbours: list[tuple[int, float]]

    def features(self) -> np.ndarray:
        return np.array([self.share, self.nearest, self.margin, 1.0])


def _winner(weights: dict[str, float]) -> tuple[str, float, float]:
    ranked = sorted(weights.items(), key=lambda item: -item[1])
    total = sum(weights.values()) or 1.0
    first = ranked[0][1] / total
    second = ranked[1][1] / total if len(ranked) > 1 else 0.0
    return ranked[0][0], first, first - second


@dataclass
class Calibrator:
    """Logistic map from vote features to P(vote is right)."""

    coef: np.ndarray = field(default_factory=lambda: np.array([4.0, 2.0, 2.0, -3.0]))

    def __call__(self, features: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(-features @ self.coef)))

    @classmethod
    def fit(cls, features: np.ndarray, correct: np.ndarray, iterations: int = 50, l2: float = 1e-3) -> "Calibrator":
        """Logistic regression by Newton's method, with the vote features' weights kept >= 0.

        More agreement, a nearer example or a wider margin must never lower the
        confidence, also outside the range leave-one-out saw (an exact match of
        an example is nearer than any example is to another): a feature that
        fits with a negative weight is dropped and the rest refitted.
        """
        active = np.ones(features.shape[1], dtype=bool)
        while True:
            coef = np.zeros(features.shape[1])
            coef[active] = _newton(features[:, active], correct, iterations, l2)
            negative = active & (coef < 0)
            negative[-1] = False  # the intercept may be anything
            if not negative.any():
                return cls(coef)
            active &= ~negative


def _newton(features: np.ndarray, correct: np.ndarray, iterations: int, l2: float) -> np.ndarray:
    coef = np.zeros(features.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-features @ coef))
        gradient = features.T @ (p - correct) + l2 * coef
        hessian = (features * (p * (1 - p))[:, None]).T @ features + l2 * np.eye(len(coef))
        step = np.linalg.solve(hessian, gradient)
        coef -= step
        if np.abs(step).max() < 1e-8:
            break
    return coef


class ExampleSet:
    """Examples with their unit embeddings, ready to vote."""

    def __init__(self, examples: list[Example], vectors: np.ndarray, *, calibrate: bool = True) -> None:
        self.examples = examples
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.floor = DEFAULT_FLOOR
        self.calibrator = Calibrator()
        if calibrate and len(examples) >= 20:
            self._calibrate()

    def __len__(self) -> int:
        return len(self.examples)

    def vote(self, vector: np.ndarray, *, exclude: int | None = None) -> Vote:
        similarities = self.vectors @ np.asarray(vector, dtype=np.float32)
        if exclude is not None:
            similarities[exclude] = -2.0
        k = min(K, len(similarities))
        top = np.argpartition(-similarities, k - 1)[:k]
        top = top[np.argsort(-similarities[top])]
        nearest = float(similarities[top[0]])
        weights = np.exp((similarities[top] - nearest) / TEMPERATURE)
        intents: dict[str, float] = defaultdict(float)
        for index, weight in zip(top, weights, strict=True):
            intents[self.examples[index].intent] += float(weight)
        intent, share, margin = _winner(intents)
        complexity: dict[str, float] = defaultdict(float)
        strategy: dict[str, float] = defaultdict(float)
        for index, weight in zip(top, weights, strict=True):
            example = self.examples[index]
            if example.intent == intent:
                complexity[example.complexity] += float(weight)
                strategy[example.cache_strategy] += float(weight)
        if nearest < self.floor:
            intent, share, margin = Intent.ERROR, share * nearest / self.floor, 0.0
        return Vote(
            intent=Intent(intent),
            complexity=Complexity(_winner(complexity)[0]) if complexity else Complexity.MEDIUM,
            cache_strategy=CacheStrategy(_winner(strategy)[0]) if strategy else CacheStrategy.STANDARD,
            share=share,
            nearest=nearest,
            margin=margin,
            neighbours=[(int(i), float(similarities[i])) for i in top],
        )

    def _calibrate(self) -> None:
        """Leave-one-out over (a sample of) the examples: route each against the
        others; set the out-of-scope floor, then fit the confidence map."""
        rng = np.random.default_rng(0)
        indices = np.arange(len(self.examples))
        if len(indices) > CALIBRATION_SAMPLE:
            indices = rng.choice(indices, CALIBRATION_SAMPLE, replace=False)
        similarities = self.vectors[indices] @ self.vectors.T
        similarities[np.arange(len(indices)), indices] = -2.0
        in_scope = np.array([self.examples[i].intent != Intent.ERROR for i in indices])
        if in_scope.any():
            floor = float(np.percentile(similarities[in_scope].max(axis=1), OUT_OF_SCOPE_PERCENTILE))
            self.floor = float(np.clip(floor, *FLOOR_BOUNDS))
        features, correct = [], []
        for index in indices:
            vote = self.vote(self.vectors[index], exclude=int(index))
            features.append(vote.features())
            correct.append(float(vote.intent == self.examples[index].intent))
        if len(set(correct)) == 2:
            self.calibrator = Calibrator.fit(np.array(features), np.array(correct))

    def neighbours(self, vote: Vote, limit: int = 5) -> tuple[Neighbour, ...]:
        found = []
        for index, similarity in vote.neighbours[:limit]:
            example = self.examples[index]
            found.append(
                Neighbour(
                    text=example.text,
                    intent=example.intent,
                    complexity=example.complexity,
                    cache_strategy=example.cache_strategy,
                    similarity=round(similarity, 4),
                    scope=example.scope,
                )
            )
        return tuple(found)


def route_locally(examples: ExampleSet, vector: np.ndarray) -> tuple[Vote, float]:
    """The vote and its calibrated confidence."""
    if not len(examples):
        raise ValueError("the router has no examples")
    vote = examples.vote(vector)
    return vote, examples.calibrator(vote.features())
