import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ai.cache.evaluation import Pair, load_pairs
from ai.embeddings import get_embedder
from ai.verifier.crossoptions import add_cross_encoder_arguments, fit_cross_encoder_from_options
from ai.verifier.learn import fit_verifier_on_pairs
from ai.verifier.models import LabelledPair
from ai.verifier.storage import verifier_store


class Command(BaseCommand):
    help = (
        "Train the cache's hit verifier from labelled pairs (JSON lines {text_a, text_b, label} and the pairs "
        "operators labelled in the admin) and store it; --activate makes the live cache use it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--train", type=Path, action="append", default=[], help="a file of labelled pairs")
        parser.add_argument("--skip", type=int, default=0, help="leave out the first N pairs of each file")
        parser.add_argument("--no-admin-pairs", action="store_true", help="ignore pairs labelled in the admin")
        parser.add_argument("--target-precision", type=float, default=0.85)
        parser.add_argument("--min-similarity", type=float, default=0.80)
        parser.add_argument("--activate", action="store_true", help="make it the live cache's verifier")
        add_cross_encoder_arguments(parser)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, train: list[Path], skip: int, no_admin_pairs: bool, activate: bool, **options):
        pairs: list[Pair] = []
        for path in train:
            if not path.exists():
                raise CommandError(f"No such file: {path}")
            pairs += load_pairs(path, offset=skip)
        if not no_admin_pairs:
            pairs += [
                Pair(a, b, int(same)) for a, b, same in LabelledPair.objects.values_list("text_a", "text_b", "same")
            ]
        embedder = get_embedder()
        try:
            calibration = {"target_precision": options["target_precision"], "min_similarity": options["min_similarity"]}
            if options["cross_encoder"]:
                trained = fit_cross_encoder_from_options(pairs, embedder, calibration, options)
            else:
                trained = fit_verifier_on_pairs(pairs, embedder, **calibration)
        except ValueError as error:
            raise CommandError(str(error)) from error
        record = verifier_store(trained, activate=activate)
        result = {"id": record.pk, "active": record.active, "min_score": round(record.min_score, 4), **record.report}
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        kind = trained.report.get("kind", "boosting")
        self.stdout.write(
            f"Verifier #{record.pk} ({kind}) {'(active) ' if activate else ''}trained on "
            f"{trained.report['fit_pairs']} pairs, "
            f"calibrated on {trained.report['calibration_pairs']}: min score {record.min_score:.3f} gives "
            f"precision {trained.report['calibration_precision']:.3f} on held-out pairs with cosine >= "
            f"{trained.report['min_similarity']:.2f}."
        )
