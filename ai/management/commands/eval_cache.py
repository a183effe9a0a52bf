import time
from copy import copy
from json import dumps
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ai.cache.evaluation import (
    DEFAULT_THRESHOLDS,
    as_json,
    format_table,
    load_pairs,
    operating_points,
    pair_vectors,
    similarities,
    stderr_progress,
)
from ai.cache.judge import HitJudge
from ai.cache.tuning import GRID, choose_thresholds
from ai.embeddings import build_embedder, get_embedder
from ai.router.io import STARTER_EXAMPLES, parse_lines
from ai.router.local import Example, ExampleSet, route_locally
from ai.tenant_settings.selectors import settings_for
from ai.tenant_settings.services import tenant_settings_save
from ai.verifier.evalchoice import add_verifier_choice_arguments, chosen_verifiers, ranking_summary
from ai.verifier.statememo import memoised
from tenants.commands import tenant_from_slug

STEPS = {
    "cosine": "cosine similarity only",
    "guards": "cosine + guards (numbers, negation)",
    "intent": "cosine + guards + the router gives both questions the same intent (starter examples)",
    "verifier": "cosine + guards + the verifier trained on --train (its cutoff calibrated on a held-out share)",
    "default": "cosine + guards + the default verifier shipped with the code (AI['DEFAULT_VERIFIER'])",
}


class Command(BaseCommand):
    help = (
        "Precision, recall and false-hit rate of the cache's hit decision on labelled pairs "
        "(JSON lines {text_a, text_b, label}), per threshold and per decision step."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", type=Path, help="pairs to score (never trained on)")
        parser.add_argument(
            "--tenant", help="slug: choose this tenant's thresholds from its labelled pairs (feedback, admin) for "
            "--target-precision at the highest recall, with its live verifier; --apply saves them (audited)"
        )  # fmt: skip
        parser.add_argument("--apply", action="store_true", help="with --tenant: save the chosen thresholds")
        parser.add_argument("--train", type=Path, help="labelled pairs for any step that learns")
        parser.add_argument("--embedder", default="local", help="'local', 'local:<model>' or 'openai:<model>'")
        parser.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS))
        parser.add_argument("--limit", type=int, help="score only the first N pairs")
        parser.add_argument(
            "--steps",
            help=f"comma-separated: {', '.join(STEPS)} (default: all but 'default'; 'verifier' only with --train)",
        )
        parser.add_argument("--train-limit", type=int, help="train on at most N pairs of --train")
        parser.add_argument("--target-precision", type=float, default=0.85, help="the verifier's calibration target")
        parser.add_argument(
            "--min-similarity", type=float, default=0.80, help="the lowest cosine the verifier is calibrated for"
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
        add_verifier_choice_arguments(parser)

    def handle(self, *args, data: Path | None, train: Path | None, embedder: str, thresholds: str, limit, steps,
               json: bool, **options):  # fmt: skip
        if options["tenant"]:
            return self._tune(options["tenant"], data, options["target_precision"], apply=options["apply"], json=json)
        if data is None:
            raise CommandError("Name the pairs to score with --data (or a tenant to tune with --tenant)")
        if options["apply"]:
            raise CommandError("--apply saves a tenant's thresholds: it needs --tenant")
        for path in (data, train):
            if path is not None and not path.exists():
                raise CommandError(f"No such file: {path}")
        pairs = load_pairs(data, limit=limit)
        if not pairs:
            raise CommandError(f"No pairs in {data}")
        learns = train or options["verifier_id"]
        default_steps = [s for s in STEPS if (s != "verifier" or learns) and s != "default"]
        wanted = [s.strip() for s in steps.split(",") if s.strip()] if steps else default_steps
        unknown = set(wanted) - set(STEPS)
        if unknown:
            raise CommandError(f"Unknown steps: {', '.join(sorted(unknown))}; known: {', '.join(STEPS)}")
        if "verifier" in wanted and not learns:
            raise CommandError("The verifier step learns: name its labelled pairs with --train (or --verifier-id)")
        cutoffs = [float(t) for t in thresholds.split(",")]
        model = _embedder(embedder)
        if "verifier" in wanted:  # the verifier's token states come from the same forward pass as the vectors
            model = memoised(model)

        started = time.perf_counter()
        a, b = pair_vectors(model, pairs, progress=stderr_progress("embedding"))
        scores = similarities(a, b)
        embed_seconds = time.perf_counter() - started

        judges = {
            "cosine": HitJudge(guards=False),
            "guards": HitJudge(guards=True),
            "intent": HitJudge(guards=True, require_same_intent=True),
        }
        verifier_report, verifier_reports = None, {}
        if "verifier" in wanted:
            if options["verifier_id"] or options["cross_encoder"]:
                verifiers = chosen_verifiers(train, pairs, scores, model, options)
            else:
                verifiers = {"verifier": self._train_verifier(train, pairs, model, options)}
                # Every pair is scored (the judge asks about the band only): the ranking covers them all.
                verifiers["verifier"].prime([(p.text_a, p.text_b) for p in pairs], list(scores))
            for name, verifier in verifiers.items():
                judges[name] = HitJudge(guards=True, verifier=verifier)
                verifier_reports[name] = {**verifier.trained.report, "min_score": round(verifier.min_score, 4)}
                verifier_reports[name]["scored"] = ranking_summary(verifier, pairs)
            wanted += [name for name in verifiers if name not in wanted]
            verifier_report = verifier_reports["verifier"]
        if "default" in wanted:
            judges["default"] = HitJudge(guards=True, verifier=self._default_verifier(pairs, scores, cutoffs))
        intents = _router_intents(model, a, b) if "intent" in wanted else None
        results = {
            step: operating_points(judges[step], pairs, scores, cutoffs, intents if step == "intent" else None)
            for step in wanted
        }
        positives = sum(p.label for p in pairs)
        if json:
            meta = {"data": str(data), "pairs": len(pairs), "positives": positives, "embedder": model.id}
            extra = {"verifier": verifier_report} if verifier_report else {}
            if len(verifier_reports) > 1:
                extra["verifier_parts"] = {k: v for k, v in verifier_reports.items() if k != "verifier"}
            self.stdout.write(as_json(results, **meta, **extra))
            return
        for step, points in results.items():
            self.stdout.write(format_table(f"\n{step}: {STEPS.get(step, 'cosine + guards + ' + step)}", points))
        for name, report in verifier_reports.items():
            kept = {k: v for k, v in report.items() if k != "config"}
            self.stdout.write(f"\n{name}: {kept}")
        self.stdout.write(
            f"\n{len(pairs)} pairs ({positives} same-meaning) from {data}; embedder {model.id}; "
            f"embedded in {embed_seconds:.1f} s"
        )

    def _default_verifier(self, pairs: list, scores, cutoffs: list[float]):
        from ai.verifier.live import default_verifier

        verifier = default_verifier()
        if verifier is None:
            raise CommandError("No default verifier to score (AI['DEFAULT_VERIFIER'] unset or unreadable)")
        band = [(p.text_a, p.text_b, s) for p, s in zip(pairs, scores, strict=True) if s >= min(cutoffs)]
        verifier.prime([(a_, b_) for a_, b_, _ in band], [s for *_, s in band])
        return verifier

    def _train_verifier(self, train: Path, scored: list, model, options):
        """Fit the verifier on --train, leaving out every pair that is also scored."""
        # scikit-learn (a 2-3 s import) loads only when --train asks for the verifier.
        from ai.verifier.learn import fit_verifier_on_pairs
        from ai.verifier.live import PairVerifier

        held_out = {frozenset((p.text_a, p.text_b)) for p in scored}
        learn = [p for p in load_pairs(train) if frozenset((p.text_a, p.text_b)) not in held_out]
        learn = learn[: options["train_limit"]] if options["train_limit"] else learn
        if not learn:
            raise CommandError(f"No pairs in {train} besides the scored ones")
        trained = fit_verifier_on_pairs(
            learn, model, target_precision=options["target_precision"], min_similarity=options["min_similarity"]
        )
        return PairVerifier(trained, model, trained.min_score)

    def _tune(self, slug: str, data: Path | None, target: float, *, apply: bool, json: bool) -> None:
        """Choose (and with ``apply`` save) a tenant's thresholds from its labelled pairs."""
        from ai.management.commands.train_verifier import labelled_pairs
        from ai.verifier.live import ActiveVerifier

        tenant = tenant_from_slug(slug)
        if data is not None and not data.exists():
            raise CommandError(f"No such file: {data}")
        pairs = labelled_pairs(tenant.pk) + (load_pairs(data) if data else [])
        model = get_embedder()
        a, b = pair_vectors(model, pairs, progress=stderr_progress("embedding"))
        verifier = ActiveVerifier().current(tenant.pk)
        try:
            choice = choose_thresholds(HitJudge(verifier=verifier), pairs, similarities(a, b), target)
        except ValueError as error:
            raise CommandError(f"{error}; tenant {slug} has {len(pairs)}") from error
        applied = []
        if apply and choice.standard is not None:
            settings = copy(settings_for(tenant))  # the row cache's object is shared: change a copy
            settings.threshold_standard, settings.threshold_strict = choice.standard, choice.strict
            applied = [
                f"{c.field}: {c.old_value} -> {c.new_value}" for c in tenant_settings_save(settings=settings, user=None)
            ]
        result = {
            "tenant": slug, "pairs": len(pairs), "positives": sum(p.label for p in pairs), "target_precision": target,
            "verifier": verifier.name if verifier else None, **choice.as_dict(), "applied": applied,
        }  # fmt: skip
        if json:
            self.stdout.write(dumps(result, indent=2))
            return
        self.stdout.write(_tuned_summary(result, apply=apply))


def _tuned_summary(result: dict, *, apply: bool) -> str:
    if result["standard"] is None:
        return (
            f"No threshold up to {GRID[-1]} reaches precision {result['target_precision']} on the "
            f"{result['pairs']} labelled pairs of {result['tenant']}: nothing chosen."
        )
    cv, chosen = result["cross_validated"], result["chosen_on_all"]
    lines = [
        f"{result['tenant']}: {result['pairs']} labelled pairs ({result['positives']} same), verifier "
        f"{result['verifier'] or 'none'}, target precision {result['target_precision']}",
        f"  standard threshold {result['standard']:.2f} (strict {result['strict']:.2f}): on all pairs precision "
        f"{chosen['precision']:.3f}, recall {chosen['recall']:.3f}",
        f"  {cv['folds']}-fold cross-validated: precision {cv['precision']:.3f}, recall {cv['recall']:.3f} "
        f"({cv['hits']} hits)",
    ]
    if apply:
        lines.append("  saved: " + ("; ".join(result["applied"]) or "no change"))
    else:
        lines.append("  not saved (--apply saves them)")
    return "\n".join(lines)


def _embedder(spec: str):
    kind, _, name = spec.partition(":")
    if kind == "local":
        return build_embedder({"backend": "local", "model": name or None})
    if kind == "openai":
        return build_embedder({"backend": "openai", "model": name})
    raise CommandError(f"Unknown embedder {spec!r}")


def _router_intents(model, a, b) -> list[tuple[str, str]]:
    """The local router's intent for both texts of every pair, voting with the starter examples."""
    rows = parse_lines(STARTER_EXAMPLES.read_text().splitlines())
    examples = ExampleSet(
        [Example(r["text"], r["intent"], r.get("complexity", "medium")) for r in rows],
        model.embed([r["text"] for r in rows]).vectors,
    )
    return [
        (str(route_locally(examples, va)[0].intent), str(route_locally(examples, vb)[0].intent))
        for va, vb in zip(a, b, strict=True)
    ]
