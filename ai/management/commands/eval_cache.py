import time
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
from ai.embeddings import build_embedder

STEPS = {
    "cosine": "cosine similarity only",
    "guards": "cosine + guards (numbers, negation)",
    "intent": "cosine + guards + the router gives both questions the same intent (starter examples)",
}


class Command(BaseCommand):
    help = (
        "Precision, recall and false-hit rate of the cache's hit decision on labelled pairs "
        "(JSON lines {text_a, text_b, label}), per threshold and per decision step."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, type=Path, help="pairs to score (never trained on)")
        parser.add_argument("--train", type=Path, help="labelled pairs for any step that learns")
        parser.add_argument("--embedder", default="local", help="'local', 'local:<model>' or 'openai:<model>'")
        parser.add_argument("--thresholds", default=",".join(str(t) for t in DEFAULT_THRESHOLDS))
        parser.add_argument("--limit", type=int, help="score only the first N pairs")
        parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated: {', '.join(STEPS)}")
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")

    def handle(self, *args, data: Path, embedder: str, thresholds: str, limit, steps: str, json: bool, **options):
        if not data.exists():
            raise CommandError(f"No such file: {data}")
        pairs = load_pairs(data, limit=limit)
        if not pairs:
            raise CommandError(f"No pairs in {data}")
        wanted = [s.strip() for s in steps.split(",") if s.strip()]
        unknown = set(wanted) - set(STEPS)
        if unknown:
            raise CommandError(f"Unknown steps: {', '.join(sorted(unknown))}; known: {', '.join(STEPS)}")
        cutoffs = [float(t) for t in thresholds.split(",")]
        model = _embedder(embedder)

        started = time.perf_counter()
        a, b = pair_vectors(model, pairs, progress=stderr_progress("embedding"))
        scores = similarities(a, b)
        embed_seconds = time.perf_counter() - started

        judges = {
            "cosine": HitJudge(guards=False),
            "guards": HitJudge(guards=True),
            "intent": HitJudge(guards=True, require_same_intent=True),
        }
        intents = _router_intents(model, a, b) if "intent" in wanted else None
        results = {
            step: operating_points(judges[step], pairs, scores, cutoffs, intents if step == "intent" else None)
            for step in wanted
        }
        positives = sum(p.label for p in pairs)
        if json:
            self.stdout.write(
                as_json(results, data=str(data), pairs=len(pairs), positives=positives, embedder=model.id)
            )
            return
        for step, points in results.items():
            self.stdout.write(format_table(f"\n{step}: {STEPS[step]}", points))
        self.stdout.write(
            f"\n{len(pairs)} pairs ({positives} same-meaning) from {data}; embedder {model.id}; "
            f"embedded in {embed_seconds:.1f} s"
        )


def _embedder(spec: str):
    kind, _, name = spec.partition(":")
    if kind == "local":
        return build_embedder({"backend": "local", "model": name or None})
    if kind == "openai":
        return build_embedder({"backend": "openai", "model": name})
    raise CommandError(f"Unknown embedder {spec!r}")


def _router_intents(model, a, b) -> list[tuple[str, str]]:
    """The local router's intent for both texts of every pair, voting with the starter examples."""
    from ai.router.io import STARTER_EXAMPLES, parse_lines
    from ai.router.local import Example, ExampleSet, route_locally

    rows = parse_lines(STARTER_EXAMPLES.read_text().splitlines())
    examples = ExampleSet(
        [Example(r["text"], r["intent"], r.get("complexity", "medium")) for r in rows],
        model.embed([r["text"] for r in rows]).vectors,
    )
    return [
        (str(route_locally(examples, va)[0].intent), str(route_locally(examples, vb)[0].intent))
        for va, vb in zip(a, b, strict=True)
    ]
