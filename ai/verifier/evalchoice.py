"""Which verifier ``eval_cache`` scores: a stored one (``--verifier-id``) or a cross-encoder it trains.

A stored cross-encoder verifier is re-calibrated from the held-out logits it kept (never from the
scored pairs): ``--use`` picks the ensemble or one of its parts, ``--target-precision`` the cutoff.
Scoring a stored model is honest only when it was trained without the scored pairs (``train_verifier
--skip N`` for ``eval_cache --limit N`` on the same file); its report says what it was trained on.
"""

import numpy as np
from django.core.management.base import CommandError

from ai.verifier.crosscalibrate import USES, recalibrate
from ai.verifier.crossencoder import KIND
from ai.verifier.crossoptions import add_cross_encoder_arguments, fit_cross_encoder_from_options
from ai.verifier.ranking import auc, best_precision_at_recall


def add_verifier_choice_arguments(parser) -> None:
    parser.add_argument("--verifier-id", type=int, help="score this stored VerifierModel instead of training one")
    parser.add_argument(
        "--use",
        choices=[*USES, "all"],
        default="ensemble",
        help="a cross-encoder verifier's ensemble, one of its parts, or all three (steps 'verifier (cross)', ...)",
    )
    add_cross_encoder_arguments(parser)


def chosen_verifiers(train, scored: list, cosines, embedder, options: dict) -> dict:
    """{step name: PairVerifier}, scores primed for every scored pair: "verifier", then any parts asked for."""
    from ai.verifier.live import PairVerifier

    pk = options["verifier_id"]
    trained = stored_verifier(pk, embedder) if pk else _fit(train, scored, embedder, options)
    texts = [(p.text_a, p.text_b) for p in scored]
    if getattr(trained, "kind", None) != KIND:
        verifier = PairVerifier(trained, embedder, trained.min_score)
        verifier.prime(texts, list(cosines))
        return {"verifier": verifier}
    uses = (
        [u for u in USES if trained.boosting is not None or u == "cross"]
        if options["use"] == "all"
        else [options["use"]]
    )
    components = trained.components(texts, list(cosines), embedder)  # both models run once for every variant
    verifiers = {}
    for use in uses:
        try:
            variant = recalibrate(trained, target_precision=options["target_precision"], use=use)
        except ValueError as error:
            raise CommandError(str(error))
        verifier = PairVerifier(variant, embedder, variant.min_score)
        verifier._primed.update(zip(texts, (float(s) for s in variant.combine(components)), strict=True))
        verifiers["verifier" if not verifiers else f"verifier ({use})"] = verifier
    return verifiers


def stored_verifier(pk: int, embedder):
    """Verifier #pk (any tenant's or the global one), checked against ``embedder``."""
    from ai.verifier.learn import TrainedVerifier
    from ai.verifier.models import VerifierModel
    from tenants.scoping import unscoped_scope

    with unscoped_scope():  # an operator's command: any tenant's or the global model, by id
        record = VerifierModel.objects.filter(pk=pk).first()
    if record is None:
        raise CommandError(f"No verifier #{pk}")
    trained = TrainedVerifier.from_bytes(bytes(record.blob))
    if trained.embedder_id != embedder.id:
        raise CommandError(f"Verifier #{record.pk} was trained with {trained.embedder_id}, not {embedder.id}")
    return trained


def _fit(train, scored: list, embedder, options: dict):
    """A cross-encoder trained on --train without any scored pair."""
    from ai.cache.evaluation import load_pairs

    held_out = {frozenset((p.text_a, p.text_b)) for p in scored}
    learn = [p for p in load_pairs(train) if frozenset((p.text_a, p.text_b)) not in held_out]
    learn = learn[: options["train_limit"]] if options["train_limit"] else learn
    calibration = {"target_precision": options["target_precision"], "min_similarity": options["min_similarity"]}
    return fit_cross_encoder_from_options(learn, embedder, calibration, options)


def ranking_summary(verifier, pairs: list) -> dict:
    """AUC and the best precision at recall >= 0.50 of the verifier's scores on all scored pairs."""
    scores = np.array([verifier.score(p.text_a, p.text_b, 0.0) for p in pairs])  # primed: no model runs
    labels = np.array([p.label for p in pairs])
    return {
        "auc": round(auc(scores, labels), 4),
        "best_precision_at_recall_0.5 (cutoff on these pairs: optimistic)": round(
            best_precision_at_recall(scores, labels, 0.5), 4
        ),
    }
