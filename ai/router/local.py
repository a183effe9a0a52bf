"""The local router: a weighted vote of the nearest few-shot examples.

It reuses the query embedding the cache already computed, so routing costs a
matrix-vector product over the examples (well under a millisecond), no model
call.

Out of scope: a query whose *support* (the mean similarity of its three nearest
in-scope examples that are scope evidence, see ``Example.evidence``) is under the
set's floor, or whose nearest examples are labelled ``error``. Confidence is
calibrated: a logistic map from (vote share, nearest similarity, margin, distance
of the support from the floor) to the probability that the decision is right.

Both are fitted on the example set itself by leave-one-out (each example routed
against the others: a cross-validation on the operator's own data, nothing fitted
on evaluation queries). The floor separates the in-scope examples' support from the
``error`` examples' (a logistic fit), with out-of-scope queries taken to be
``OUT_OF_SCOPE_PRIOR`` of the traffic; the confidence map is fitted with the same
weight on the ``error`` examples, so it stays calibrated when out-of-scope queries
are common rather than as rare as in the examples. With fewer than
``MIN_ERROR_EXAMPLES`` ``error`` examples the floor is the support that only 2% of
in-scope examples fall under.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ai.router.decisions import CacheStrategy, Complexity, Intent, Neighbour

K = 10
TEMPERATURE = 0.05
SUPPORT_K = 3
OUT_OF_SCOPE_PRIOR = 0.2
MIN_ERROR_EXAMPLES = 10
OUT_OF_SCOPE_PERCENTILE = 2.0
FLOOR_BOUNDS = (0.15, 0.60)
# Query-to-document similarity (MiniLM cosine) from which a document is about the query: to a
# question bootstrapped from it, or to one of its passages (ai/router/service.py). On the dev
# FAQ tenants (bench/faq_pairs.py on CLINC150; rephrasings of the COVID FAQ) 86% and 100% of
# the rephrasings reach one of them, and 6% and 3% of CLINC's out-of-scope training queries.
QUESTION_FLOOR = 0.40
PASSAGE_FLOOR = 0.35
ABOUT_K = 3
DOCUMENTS_IN, DOCUMENTS_OUT = (19.35, 1.91), (22.67, -1.95)  # (slope, intercept): document_confidence
DEFAULT_FLOOR = 0.35
CALIBRATION_SAMPLE = 2000


class Scope(StrEnum):
    """What put a query in scope: examples (its support over the floor), the tenant's
    documents (QUESTION_FLOOR, PASSAGE_FLOOR), or nothing (out of scope)."""

    EXAMPLES = "examples"
    DOCUMENTS = "documents"
    NONE = "none"


def share_weights(out: np.ndarray, share: float) -> np.ndarray:
    """Weights under which the rows marked ``out`` carry ``share`` of the total and the others
    the rest, whatever their numbers (a prior on the out-of-scope share of traffic); mean 1."""
    weights = np.where(out, share / max(out.sum(), 1), (1 - share) / max((~out).sum(), 1))
    return weights * len(weights) / weights.sum()


def document_distance(question: float | None, passage: float | None) -> float | None:
    """How far a query's document evidence is above (>= 0: in scope) or below its floor: the
    nearer of its nearest bootstrapped question and its nearest passage; None without documents."""
    distances = [s - floor for s, floor in ((question, QUESTION_FLOOR), (passage, PASSAGE_FLOOR)) if s is not None]
    return max(distances) if distances else None


def document_confidence(distance: float) -> float:
    """P(the decision is right) where the tenant's documents decided the scope; ``distance``
    is how far the query's document similarity is above its floor (in scope, >= 0) or below
    it (out of scope, < 0): ``max(question - QUESTION_FLOOR, passage - PASSAGE_FLOOR)``.
    One logistic per side, fitted on the dev FAQ tenants' rephrasings against CLINC's
    out-of-scope training queries, with out-of-scope at OUT_OF_SCOPE_PRIOR."""
    slope, intercept = DOCUMENTS_IN if distance >= 0 else DOCUMENTS_OUT
    return float(1.0 / (1.0 + np.exp(-(slope * abs(distance) + intercept))))


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    complexity: str = Complexity.MEDIUM
    cache_strategy: str = CacheStrategy.STANDARD
    scope: str = "global"
    # Whether the example says what the tenant may be asked (``ai.router.examples.with_scope_evidence``).
    evidence: bool = True
    # The document it was bootstrapped from (ai/router/bootstrap.py), if any: one example per
    # topic, so leaving it out says nothing about how near a query on its topic comes; the fits skip it.
    document_id: int | None = None

    @property
    def from_document(self) -> bool:
        return self.document_id is not None


@dataclass
class Vote:
    intent: Intent
    complexity: Complexity
    cache_strategy: CacheStrategy
    share: float
    nearest: float
    margin: float
    support: float
    floor: float
    documents: float | None  # similarity of the nearest example bootstrapped from a document
    # The documents whose questions are about the query (at least QUESTION_FLOOR), nearest first.
    about: tuple[int, ...]
    scope: "Scope"
    neighbours: list[tuple[int, float]]

    def features(self) -> np.ndarray:
        return np.array([self.share, self.nearest, self.margin, abs(self.support - self.floor), 1.0])


def _winner(weights: dict[str, float]) -> tuple[str, float, float]:
    ranked = sorted(weights.items(), key=lambda item: -item[1])
    total = sum(weights.values()) or 1.0
    first = ranked[0][1] / total
    second = ranked[1][1] / total if len(ranked) > 1 else 0.0
    return ranked[0][0], first, first - second


@dataclass
class Calibrator:
    """Logistic map from vote features to P(vote is right)."""

    coef: np.ndarray = field(default_factory=lambda: np.array([4.0, 2.0, 2.0, 4.0, -3.0]))

    def __call__(self, features: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(-features @ self.coef)))

    @classmethod
    def fit(
        cls, features: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None,
        iterations: int = 50, l2: float = 1e-3,
    ) -> "Calibrator":  # fmt: skip
        """Weighted logistic regression by Newton's method, with the vote features' weights kept >= 0.

        More agreement, a nearer example or a wider margin must never lower the
        confidence, also outside the range leave-one-out saw (an exact match of
        an example is nearer than any example is to another): a feature that
        fits with a negative weight is dropped and the rest refitted.
        """
        weights = np.ones(len(correct)) if weights is None else weights * len(weights) / weights.sum()
        active = np.ones(features.shape[1], dtype=bool)
        while True:
            coef = np.zeros(features.shape[1])
            coef[active] = _newton(features[:, active], correct, weights, iterations, l2)
            negative = active & (coef < 0)
            negative[-1] = False  # the intercept may be anything
            if not negative.any():
                return cls(coef)
            active &= ~negative


def _newton(features: np.ndarray, correct: np.ndarray, weights: np.ndarray, iterations: int, l2: float) -> np.ndarray:
    coef = np.zeros(features.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-features @ coef))
        gradient = features.T @ (weights * (p - correct)) + l2 * coef
        hessian = (features * (weights * p * (1 - p))[:, None]).T @ features + l2 * np.eye(len(coef))
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
        self.errors = np.array([e.intent == Intent.ERROR for e in examples], dtype=bool)
        self.evidence = np.array(
            [e.intent != Intent.ERROR and e.evidence and not e.from_document for e in examples], dtype=bool
        )
        self.documents = np.array([e.from_document for e in examples], dtype=bool)
        self.floor = DEFAULT_FLOOR
        self.calibrator = Calibrator()
        if calibrate and sum(not e.from_document for e in examples) >= 20 and self.evidence.any():
            self._calibrate()

    def __len__(self) -> int:
        return len(self.examples)

    def support(self, similarities: np.ndarray) -> np.ndarray:
        """Mean similarity of the SUPPORT_K nearest evidence examples (per row of a matrix)."""
        if not self.evidence.any():
            return similarities.max(axis=-1)
        evidence = similarities[..., self.evidence]
        k = min(SUPPORT_K, evidence.shape[-1])
        return -np.partition(-evidence, k - 1, axis=-1)[..., :k].mean(axis=-1)

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
        support = float(self.support(similarities))
        documents = float(similarities[self.documents].max()) if self.documents.any() else None
        about = self._about(similarities)
        if support >= self.floor:
            scope = Scope.EXAMPLES
        elif documents is not None and documents >= QUESTION_FLOOR:
            scope = Scope.DOCUMENTS
            if intent == Intent.ERROR:  # the tenant's documents are about it, whatever the starter set says
                intent, complexity, strategy = Intent.RETRIEVAL, {}, {}
        else:
            scope = Scope.NONE
            intent, margin = Intent.ERROR, 0.0
        return Vote(
            intent=Intent(intent),
            complexity=Complexity(_winner(complexity)[0]) if complexity else Complexity.MEDIUM,
            cache_strategy=CacheStrategy(_winner(strategy)[0]) if strategy else CacheStrategy.STANDARD,
            share=share,
            nearest=nearest,
            margin=margin,
            support=support,
            floor=self.floor,
            documents=documents,
            about=about,
            scope=scope,
            neighbours=[(int(i), float(similarities[i])) for i in top],
        )

    def _about(self, similarities: np.ndarray) -> tuple[int, ...]:
        """Up to ABOUT_K documents with a question at least QUESTION_FLOOR similar, nearest first."""
        if not self.documents.any():
            return ()
        near = np.flatnonzero(self.documents & (similarities >= QUESTION_FLOOR))
        found: list[int] = []
        for index in near[np.argsort(-similarities[near])]:
            document = self.examples[index].document_id
            if document not in found:
                found.append(document)
            if len(found) == ABOUT_K:
                break
        return tuple(found)

    def _calibrate(self) -> None:
        """Leave-one-out over (a sample of) the examples: route each against the others;
        fit the out-of-scope floor, then the confidence map (module docstring)."""
        rng = np.random.default_rng(0)
        indices = np.array([i for i, e in enumerate(self.examples) if not e.from_document], dtype=int)
        if not len(indices):
            return
        if len(indices) > CALIBRATION_SAMPLE:
            indices = rng.choice(indices, CALIBRATION_SAMPLE, replace=False)
        similarities = self.vectors[indices] @ self.vectors.T
        similarities[np.arange(len(indices)), indices] = -2.0
        support = self.support(similarities)
        errors, evidence = self.errors[indices], self.evidence[indices]
        self.floor = self._fit_floor(support[evidence], support[errors])
        # The error examples stand for OUT_OF_SCOPE_PRIOR of the traffic (when there are enough).
        weights = share_weights(errors, OUT_OF_SCOPE_PRIOR) if errors.sum() >= MIN_ERROR_EXAMPLES else None
        features, correct = [], []
        for index in indices:
            vote = self.vote(self.vectors[index], exclude=int(index))
            features.append(vote.features())
            correct.append(float(vote.intent == self.examples[index].intent))
        if len(set(correct)) == 2:
            self.calibrator = Calibrator.fit(np.array(features), np.array(correct), weights)

    @staticmethod
    def _fit_floor(inside: np.ndarray, outside: np.ndarray) -> float:
        """The support where an out-of-scope query becomes likelier than an in-scope one, with
        out-of-scope traffic at OUT_OF_SCOPE_PRIOR (one-feature weighted logistic regression)."""
        if len(outside) < MIN_ERROR_EXAMPLES or not len(inside):
            floor = float(np.percentile(inside, OUT_OF_SCOPE_PERCENTILE)) if len(inside) else DEFAULT_FLOOR
            return float(np.clip(floor, *FLOOR_BOUNDS))
        values = np.concatenate([inside, outside])
        features = np.stack([values, np.ones(len(values))], axis=1)
        label = np.concatenate([np.ones(len(inside)), np.zeros(len(outside))])
        slope, intercept = _newton(features, label, share_weights(label == 0, OUT_OF_SCOPE_PRIOR), 50, 1e-3)
        floor = -intercept / slope if slope > 0 else DEFAULT_FLOOR
        return float(np.clip(floor, *FLOOR_BOUNDS))

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
    """The vote and its calibrated confidence. Where the tenant's documents decided the scope
    (in, or out when it has documents), the confidence is theirs (``document_confidence``)."""
    if not len(examples):
        raise ValueError("the router has no examples")
    vote = examples.vote(vector)
    if vote.documents is not None and vote.scope != Scope.EXAMPLES:
        return vote, document_confidence(document_distance(vote.documents, None))
    return vote, examples.calibrator(vote.features())
