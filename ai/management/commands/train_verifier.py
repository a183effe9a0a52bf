import json
import lzma
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ai.cache.evaluation import Pair, load_pairs
from ai.embeddings import get_embedder
from ai.verifier.crossoptions import add_cross_encoder_arguments, fit_cross_encoder_from_options
from ai.verifier.learn import fit_verifier_on_pairs
from ai.verifier.live import DEFAULT_VERIFY_BELOW
from ai.verifier.models import LabelledPair
from ai.verifier.storage import verifier_store
from tenants.commands import tenant_from_slug
from tenants.scoping import tenant_scope


def labelled_pairs(tenant_id: int | None) -> list[Pair]:
    """The pairs labelled in the admin and by feedback that a verifier for ``tenant_id`` may learn
    from: the global ones and, for a tenant, its own (never another tenant's)."""
    columns = ("text_a", "text_b", "same")
    rows = list(LabelledPair.objects.global_rows().values_list(*columns))
    if tenant_id is not None:
        with tenant_scope(tenant_id):
            rows += LabelledPair.objects.for_tenant(tenant_id).values_list(*columns)
    return [Pair(a, b, int(same)) for a, b, same in rows]


class Command(BaseCommand):
    help = (
        "Train the cache's hit verifier from labelled pairs (JSON lines {text_a, text_b, label}, the global pairs "
        "labelled in the admin and, with --tenant, that tenant's own feedback) and store it: for every tenant "
        "without its own, or with --tenant for that tenant only; --activate makes the live cache use it. "
        "--export writes it to a file instead (the shipped default: ai/verifier/default/README.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--train", type=Path, action="append", default=[], help="a file of labelled pairs")
        parser.add_argument("--skip", type=int, default=0, help="leave out the first N pairs of each file")
        parser.add_argument("--no-admin-pairs", action="store_true", help="ignore pairs labelled in the admin")
        parser.add_argument("--tenant", help="slug: a verifier for this tenant, learning from its feedback too")
        parser.add_argument("--target-precision", type=float, default=0.85)
        parser.add_argument("--min-similarity", type=float, default=0.80)
        parser.add_argument("--activate", action="store_true", help="make it the live cache's verifier")
        parser.add_argument("--export", type=Path, help="write the model to this file (.xz: compressed), not a row")
        add_cross_encoder_arguments(parser)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, train: list[Path], skip: int, no_admin_pairs: bool, activate: bool, **options):
        tenant = tenant_from_slug(options["tenant"]) if options["tenant"] else None
        if options["export"] and (tenant or activate):
            raise CommandError("--export writes a file: it takes neither --tenant nor --activate")
        pairs: list[Pair] = []
        for path in train:
            if not path.exists():
                raise CommandError(f"No such file: {path}")
            pairs += load_pairs(path, offset=skip)
        if not no_admin_pairs:
            pairs += labelled_pairs(tenant.pk if tenant else None)
        embedder = get_embedder()
        try:
            calibration = {"target_precision": options["target_precision"], "min_similarity": options["min_similarity"]}
            if options["cross_encoder"]:
                trained = fit_cross_encoder_from_options(pairs, embedder, calibration, options)
            else:
                trained = fit_verifier_on_pairs(pairs, embedder, **calibration)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["export"]:
            trained.report["verify_below"] = DEFAULT_VERIFY_BELOW
            blob = trained.to_bytes()
            options["export"].write_bytes(lzma.compress(blob) if options["export"].suffix == ".xz" else blob)
            result = {"file": str(options["export"]), "bytes": options["export"].stat().st_size}
        else:
            record = verifier_store(trained, tenant_id=tenant.pk if tenant else None, activate=activate)
            result = {"id": record.pk, "tenant": options["tenant"], "active": record.active}
        result |= {"min_score": round(trained.min_score, 4), **trained.report}
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        where = result.get("file") or f"#{result['id']}{' (active)' if activate else ''}"
        kind = trained.report.get("kind", "boosting")
        self.stdout.write(
            f"Verifier {where} ({kind}) trained on {trained.report['fit_pairs']} pairs, calibrated on "
            f"{trained.report['calibration_pairs']}: min score {trained.min_score:.3f} gives precision "
            f"{trained.report['calibration_precision']:.3f} on held-out pairs with cosine >= "
            f"{trained.report['min_similarity']:.2f}."
        )
