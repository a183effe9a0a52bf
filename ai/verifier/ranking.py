"""How well verifier scores rank the scored pairs, whatever the cutoff (eval_cache's summary line).

``best_precision_at_recall`` picks its cutoff on the scored pairs themselves, so it is an upper
bound, comparable with the research figures in docs/benchmarks.md; the honest figure is the
operating point the calibrated cutoff gives.
"""

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_precision_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float = 0.5) -> float:
    """The highest precision of any cutoff whose recall (of all label-1 pairs) reaches ``recall``."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-np.asarray(scores))
    correct = np.cumsum(labels[order])
    precision = correct / np.arange(1, len(order) + 1)
    reaching = correct / max(int(labels.sum()), 1) >= recall
    return float(precision[reaching].max()) if reaching.any() else 0.0
