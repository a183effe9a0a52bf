"""How the cross-encoder's and the boosting verifier's logits mix, and the cutoff: fitted on held-out pairs.

The held-out share's logits are kept with the model (``CrossEncoderVerifier.calibration``), so a
stored model can be re-calibrated for another precision target, or for one of its parts alone
(``eval_cache --verifier-id N --use cross``), without training again and without the scored pairs.
"""

import copy
from collections.abc import Sequence

import numpy as np

from ai.verifier.crossencoder import CrossEncoderVerifier, sigmoid

USES = ("ensemble", "cross", "boosting")


def fit_mix(components: np.ndarray, labels: np.ndarray, use: str) -> tuple[float, float, float]:
    """(w_cross, w_boost, bias): a logistic regression of the labels on the logits ``use`` names."""
    from sklearn.linear_model import LogisticRegression

    columns = {"ensemble": [0, 1], "cross": [0], "boosting": [1]}[use]
    fitted = LogisticRegression(C=1.0).fit(components[:, columns], labels)
    weights = dict(zip(columns, (float(w) for w in fitted.coef_[0]), strict=True))
    return weights.get(0, 0.0), weights.get(1, 0.0), float(fitted.intercept_[0])


def calibrate(
    verifier: CrossEncoderVerifier,
    components: np.ndarray,
    labels: Sequence[int],
    asked: Sequence[bool],
    *,
    target_precision: float,
    use: str = "ensemble",
) -> CrossEncoderVerifier:
    """A copy of ``verifier`` mixing its parts as ``use`` says, with the lowest cutoff reaching the target.

    ``components``: held-out pairs' (cross logit, boosting logit); ``asked``: the pairs the live cache
    would send to the verifier (cosine above the floor, guards passed): the cutoff is chosen among them.
    """
    if use not in USES:
        raise ValueError(f"use is one of {', '.join(USES)}, not {use!r}")
    if use != "cross" and verifier.boosting is None:
        raise ValueError("this cross-encoder verifier was trained without the boosting verifier")
    from ai.verifier.learn import precision_cutoff  # scikit-learn: loaded when calibrating only

    labels_array, asked_array = np.asarray(labels, dtype=np.int64), np.asarray(asked, dtype=bool)
    mix = fit_mix(components, labels_array, use)
    scores = sigmoid(mix[0] * components[:, 0] + mix[1] * components[:, 1] + mix[2])
    cutoff, precision, recall = precision_cutoff(scores[asked_array], labels_array[asked_array], target_precision)
    calibrated = copy.copy(verifier)
    calibrated.mix, calibrated.min_score = mix, cutoff
    calibrated.calibration = {"components": components.tolist(), "labels": labels_array.tolist(),
                              "asked": asked_array.tolist()}  # fmt: skip
    calibrated.report = {
        **verifier.report,
        "use": use,
        "target_precision": target_precision,
        "calibration_asked": int(asked_array.sum()),
        "calibration_precision": round(precision, 4),
        "calibration_recall_in_band": round(recall, 4),
        "mix": [round(w, 4) for w in mix],
    }
    return calibrated


def recalibrate(verifier: CrossEncoderVerifier, *, target_precision: float, use: str) -> CrossEncoderVerifier:
    """``calibrate`` again from the held-out logits the verifier kept."""
    kept = verifier.calibration
    return calibrate(
        verifier, np.asarray(kept["components"]), kept["labels"], kept["asked"],
        target_precision=target_precision, use=use,
    )  # fmt: skip
