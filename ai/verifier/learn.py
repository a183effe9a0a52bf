"""Train and apply the hit verifier: gradient boosting on pair features.

``fit_verifier`` learns from labelled pairs (1: same question, 0: not): it
holds out a calibration share, fits on the rest, and picks the lowest score
cutoff whose precision on the held-out pairs reaches the target, among the
pairs the cache would ask it about (cosine at or above ``min_similarity``).
"""

import functools
import pickle
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ai.cache.evaluation import pair_vectors, similarities, stderr_progress
from ai.cache.judge import guard_veto
from ai.verifier.features import FEATURE_VERSION, Idf, TokenStates, pair_features

# scikit-learn brings OpenMP and scipy's own OpenBLAS. Scoring one pair on a request
# thread must not wait for a second thread under load (as in ai/apps.py): one thread each.
threadpool_limits(limits=1)

Pairs = Sequence[tuple[str, str]]
MODEL_PARAMS = {"max_iter": 400, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 30}


class FlatTrees:
    """The boosted trees of a fitted binary ``HistGradientBoostingClassifier`` as flat arrays, walked
    for every tree at once with numpy: the same probabilities as ``predict_proba`` (to float
    rounding), without its per-tree Python calls and input validation (11 ms for one pair of 135
    trees on this machine, against well under one here)."""

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        trees = [per_class[0] for per_class in model._predictors]
        nodes = np.concatenate([tree.nodes for tree in trees])
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        sizes = np.array([len(tree.nodes) for tree in trees])
        offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
        self.roots = (np.cumsum(sizes) - sizes).astype(np.intp)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.left = (nodes["left"] + offsets).astype(np.intp)
        self.right = (nodes["right"] + offsets).astype(np.intp)
        self.leaf = nodes["is_leaf"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.depth = int(nodes["depth"].max()) + 1
        self.baseline = float(np.ravel(model._baseline_prediction)[0])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row."""
        raw = np.empty(len(features))
        for row, x in enumerate(np.asarray(features, dtype=np.float64)):
            node = self.roots
            for _ in range(self.depth):
                at_leaf = self.leaf[node]
                if at_leaf.all():
                    break
                value = x[self.feature[node]]
                left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
                node = np.where(at_leaf, node, np.where(left, self.left[node], self.right[node]))
            raw[row] = self.baseline + self.value[node].sum()
        return 1 / (1 + np.exp(-raw))


@dataclass
class TrainedVerifier:
    """A fitted model with everything needed to score a pair, picklable as one object."""

    model: HistGradientBoostingClassifier
    idf: Idf
    embedder_id: str
    min_score: float
    feature_version: int = FEATURE_VERSION
    sklearn_version: str = sklearn.__version__
    report: dict = field(default_factory=dict)

    def scores(self, pairs: Pairs, cosines: Sequence[float], embedder) -> np.ndarray:
        """Probability that each pair asks the same question."""
        if not pairs:
            return np.zeros(0)
        states = token_states(embedder, [t for pair in pairs for t in pair])
        features = pair_features(pairs, cosines, states, self.idf)
        if len(pairs) > 64:  # a batch (evaluation): scikit-learn's vectorised path
            return self.model.predict_proba(features)[:, 1]
        return self.flat.predict_proba(features)

    @functools.cached_property
    def flat(self) -> FlatTrees:
        return FlatTrees(self.model)

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "flat"}  # rebuilt when loaded

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def from_bytes(blob: bytes) -> "TrainedVerifier":
        # Only blobs this application wrote to its own database are ever loaded.
        verifier = pickle.loads(blob)  # noqa: S301
        if verifier.feature_version != FEATURE_VERSION or verifier.sklearn_version != sklearn.__version__:
            raise ValueError(
                f"verifier built with features v{verifier.feature_version} / scikit-learn {verifier.sklearn_version}; "
                f"this code has v{FEATURE_VERSION} / {sklearn.__version__}: retrain it (manage.py train_verifier)"
            )
        return verifier


def token_states(embedder, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> dict | None:
    """Token states of each distinct text, or None when the embedder cannot give them."""
    reader = TokenStates(embedder)
    if not reader.available:
        return None
    distinct = list(dict.fromkeys(texts))
    states: dict = {}
    step = 512
    for start in range(0, len(distinct), step):
        chunk = distinct[start : start + step]
        states.update(zip(chunk, reader(chunk), strict=True))
        if progress:
            progress(min(start + step, len(distinct)), len(distinct))
    return states


def precision_cutoff(scores: np.ndarray, labels: np.ndarray, target: float) -> tuple[float, float, float]:
    """The lowest cutoff whose hits reach ``target`` precision: (cutoff, precision, recall among these pairs)."""
    order = np.argsort(-scores)
    correct = np.cumsum(labels[order])
    taken = np.arange(1, len(order) + 1)
    precision = correct / taken
    reaching = np.flatnonzero(precision >= target)
    if len(reaching) == 0:
        return 1.0, 0.0, 0.0
    last = reaching[-1]
    positives = max(int(labels.sum()), 1)
    return float(scores[order[last]]), float(precision[last]), float(correct[last] / positives)


def fit_verifier(
    pairs: Pairs,
    labels: Sequence[int],
    cosines: Sequence[float],
    embedder,
    *,
    target_precision: float = 0.85,
    min_similarity: float = 0.80,
    calibration_share: float = 0.2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedVerifier:
    labels_array = np.asarray(labels, dtype=np.int64)
    cosines_array = np.asarray(cosines, dtype=np.float32)
    if len(pairs) < 50 or len(set(labels_array.tolist())) < 2:
        raise ValueError("The verifier needs at least 50 labelled pairs of both kinds")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[: max(int(len(order) * calibration_share), 10)])
    fit_rows = [i for i in range(len(pairs)) if i not in held]
    cal_rows = sorted(held)

    states = token_states(embedder, [t for pair in pairs for t in pair], progress)
    fit_texts = list(dict.fromkeys(t for i in fit_rows for t in pairs[i]))
    idf = Idf.fit(fit_texts, [states[t][0] for t in fit_texts] if states else [])
    features = pair_features(pairs, cosines_array, states, idf)
    model = HistGradientBoostingClassifier(random_state=seed, **MODEL_PARAMS)
    model.fit(features[fit_rows], labels_array[fit_rows])

    # Calibrate on what the live cache asks about: pairs above the similarity floor that pass the guards.
    asked = [i for i in cal_rows if cosines_array[i] >= min_similarity and not guard_veto(*pairs[i])]
    cal_scores = model.predict_proba(features[asked])[:, 1] if asked else np.zeros(0)
    cutoff, precision, recall = precision_cutoff(cal_scores, labels_array[asked], target_precision)
    report = {
        "pairs": len(pairs),
        "positives": int(labels_array.sum()),
        "fit_pairs": len(fit_rows),
        "calibration_pairs": len(cal_rows),
        "calibration_asked": len(asked),
        "target_precision": target_precision,
        "min_similarity": min_similarity,
        "calibration_precision": round(precision, 4),
        "calibration_recall_in_band": round(recall, 4),
    }
    return TrainedVerifier(model=model, idf=idf, embedder_id=embedder.id, min_score=cutoff, report=report)


def fit_verifier_on_pairs(pairs: Sequence, embedder, **options) -> TrainedVerifier:
    """``fit_verifier`` on labelled ``Pair``s, embedding them first (with progress on stderr)."""
    a, b = pair_vectors(embedder, list(pairs), progress=stderr_progress("embedding the training pairs"))
    return fit_verifier(
        [(p.text_a, p.text_b) for p in pairs],
        [p.label for p in pairs],
        similarities(a, b),
        embedder,
        progress=stderr_progress("token states of the training pairs"),
        **options,
    )
