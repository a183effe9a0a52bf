"""The cross-encoder's command-line options, shared by ``train_verifier`` and ``eval_cache``.

Training imports PyTorch (requirements-train.txt) only when ``--cross-encoder`` is given,
so both commands run without it otherwise.
"""

from django.core.management.base import CommandError

from ai.verifier.crossencoder import MAX_TOKENS


def add_cross_encoder_arguments(parser) -> None:
    group = parser.add_argument_group("cross-encoder (needs: pip install -r requirements-train.txt)")
    group.add_argument(
        "--cross-encoder", action="store_true", help="fine-tune all-MiniLM-L6-v2 as a cross-encoder (ONNX served)"
    )
    group.add_argument("--epochs", type=int, default=2)
    group.add_argument("--learning-rate", type=float, default=5e-5)
    group.add_argument("--batch", type=int, default=32)
    group.add_argument("--max-tokens", type=int, default=64, help=f"pair length cap (at most {MAX_TOKENS})")
    group.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    group.add_argument("--no-symmetric", action="store_true", help="train on (a, b) only, not also on (b, a)")
    group.add_argument(
        "--both-orders", action="store_true", help="score (a, b) and (b, a), the mean of the two (twice the cost)"
    )
    group.add_argument("--fp32", action="store_true", help="serve the fp32 graph, not int8")
    group.add_argument("--no-ensemble", action="store_true", help="the cross-encoder alone, without boosting")
    group.add_argument("--freeze-layers", type=int, default=0, help="keep the lowest N of the 6 layers as pretrained")
    group.add_argument("--train-threads", type=int, default=1)


def fit_cross_encoder_from_options(pairs: list, embedder, calibration: dict, options: dict):
    try:
        from ai.verifier.crosstrain import TrainConfig, fit_cross_encoder_on_pairs
    except ImportError as error:
        raise CommandError(f"--cross-encoder trains with PyTorch: pip install -r requirements-train.txt ({error})")
    if not 8 <= options["max_tokens"] <= MAX_TOKENS:
        raise CommandError(f"--max-tokens must be between 8 and {MAX_TOKENS}")
    config = TrainConfig(
        epochs=options["epochs"],
        learning_rate=options["learning_rate"],
        batch=options["batch"],
        max_tokens=options["max_tokens"],
        pooling=options["pooling"],
        symmetric=not options["no_symmetric"],
        both_orders=options["both_orders"],
        int8=not options["fp32"],
        freeze_layers=options["freeze_layers"],
        threads=options["train_threads"],
    )
    ensemble = not options["no_ensemble"]
    return fit_cross_encoder_on_pairs(pairs, embedder, config=config, ensemble=ensemble, **calibration)
