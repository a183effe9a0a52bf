import json as json_module
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from ai.cache.evaluation import stderr_progress
from ai.embeddings import build_embedder
from ai.router.evaluation import cross_validate, draw_examples, evaluate, example_set_of, label_map, load


def _sibling(path: Path, name: str) -> Path | None:
    candidate = path.parent / name
    return candidate if candidate.exists() else None


class Command(BaseCommand):
    help = (
        "Accuracy, per-intent precision/recall, out-of-scope recall, calibration error and latency of the "
        "local router on intent-labelled queries (CLINC150 format), with examples drawn from --train only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--train", required=True, type=Path, help="JSON lines {text, intent}: examples")
        parser.add_argument("--data", required=True, type=Path, help="JSON lines {text, intent}: scored")
        parser.add_argument("--per-intent", type=int, default=30, help="examples per data-set intent")
        parser.add_argument(
            "--oos-train", type=Path, help="out-of-scope examples (default: oos_train.jsonl beside --train)"
        )
        parser.add_argument(
            "--oos-data", type=Path, help="out-of-scope queries to score (default: oos_val.jsonl beside --data)"
        )
        parser.add_argument("--domains", type=Path, help="domain -> intents (default: domains.json beside --train)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--cv", type=int, default=0, metavar="K", help="also K-fold cross-validation on --train (+ --oos-train)"
        )
        parser.add_argument("--json", action="store_true")

    def handle(
        self, *args, train: Path, data: Path, per_intent: int, oos_train, oos_data, domains, seed, cv, json, **o
    ):
        for path in (train, data):
            if not path.exists():
                raise CommandError(f"No such file: {path}")
        domains = domains or _sibling(train, "domains.json")
        if domains is None:
            raise CommandError("--domains is needed (no domains.json beside --train)")
        mapping = label_map(domains)
        oos_train = oos_train or _sibling(train, "oos_train.jsonl")
        oos_data = oos_data or _sibling(data, "oos_val.jsonl")

        train_rows = load(train, mapping) + (load(oos_train, mapping) if oos_train else [])
        scored = load(data, mapping) + (load(oos_data, mapping) if oos_data else [])
        drawn = draw_examples(train_rows, per_intent, seed)

        embedder = build_embedder({"backend": "local"})
        embedded = train_rows if cv else drawn  # cross-validation draws its examples from all of train
        texts = [row.text for row in embedded] + [row.text for row in scored]
        progress = stderr_progress("embedding")
        vectors = []
        for start in range(0, len(texts), 64):
            vectors.append(embedder.embed(texts[start : start + 64]).vectors)
            progress(min(start + 64, len(texts)), len(texts))
        matrix = np.concatenate(vectors)
        examples = example_set_of(drawn, embedded, matrix[: len(embedded)])
        result = evaluate(examples, scored, matrix[len(embedded) :])
        result.update(examples=len(drawn), per_intent_examples=per_intent, train=str(train), data=str(data))
        if cv:
            result["cross_validation"] = cross_validate(train_rows, matrix[: len(train_rows)], per_intent, cv, seed)
        if json:
            self.stdout.write(json_module.dumps(result, indent=2))
            return
        self.stdout.write(_table(result))


def _table(r: dict) -> str:
    lines = [
        f"{r['queries']} queries scored; {r['examples']} examples ({r['per_intent_examples']} per data-set intent)",
        f"accuracy              {r['accuracy']:.3f}",
        f"in-scope accuracy     {r['in_scope_accuracy']}",
        f"out-of-scope recall   {r['out_of_scope_recall']}",
        f"calibration error     {r['expected_calibration_error']:.3f} (mean confidence {r['mean_confidence']:.3f})",
        "latency ms            " + "  ".join(f"{k} {v}" for k, v in r["latency_ms"].items()),
        "",
        "intent      support  precision  recall",
    ]
    for intent, m in r["per_intent"].items():
        lines.append(f"{intent:10}  {m['support']:7d}  {m['precision']:9.3f}  {m['recall']:6.3f}")
    cv = r.get("cross_validation")
    if cv:
        lines += [
            "",
            f"{cv['folds']}-fold cross-validation on the training rows ({cv['queries']} queries):",
            f"  accuracy {cv['accuracy']:.3f}  in-scope {cv['in_scope_accuracy']}  out-of-scope recall "
            f"{cv['out_of_scope_recall']}  calibration error {cv['expected_calibration_error']:.3f}",
        ]
        mix = cv.get("at_out_of_scope_mix")
        if mix:
            lines.append(
                f"  at {mix['out_of_scope_share']:.0%} out of scope: accuracy {mix['accuracy']:.3f}  "
                f"calibration error {mix['expected_calibration_error']:.3f}"
            )
    return "\n".join(lines)
