"""Labelled pairs for the cache's verifier from intent data sets: "the same answer", not "the
same wording" (an experiment for issue 17: do they teach a judge what an FAQ tenant needs?).

For each sampled question of an intent data set (CLINC150 ``{text, intent}`` jsonl, out-of-scope
left out; Banking77 ``text,category`` CSV): a positive, another question of the same intent, and
a hard negative, the question of another intent nearest to it by the product's embedder (the
near-misses a cache meets: "card arrived?" against "card delivery time?"). Written as
``{text_a, text_b, label}`` lines, the format ``train_verifier --train`` and ``eval_cache`` read.

    python bench/intent_pairs.py --clinc ../shared/data/clinc150/train.jsonl \\
        --banking ../shared/data/banking77/train.csv --per-source 4000 --out var/intent-pairs.jsonl
"""

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import _setup  # noqa: F401  (Django, the project's path)
import numpy as np

from ai.embeddings import get_embedder

BATCH = 256  # texts embedded at once (a whole data set in one batch pads every text to the longest)


def read_clinc(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return [(row["text"], row["intent"]) for row in rows if row["intent"] != "oos"]


def read_banking(path: Path) -> list[tuple[str, str]]:
    return [(row["text"], row["category"]) for row in csv.DictReader(path.open(encoding="utf-8"))]


def pairs_of(rows: list[tuple[str, str]], sampled: int, rng: random.Random) -> list[dict]:
    texts = [text for text, _ in rows]
    intents = np.array([intent for _, intent in rows])
    by_intent: dict[str, list[int]] = {}
    for i, intent in enumerate(intents):
        by_intent.setdefault(str(intent), []).append(i)
    embedder = get_embedder()
    vectors = np.vstack([embedder.embed(texts[at : at + BATCH]).vectors for at in range(0, len(texts), BATCH)])
    chosen = rng.sample(range(len(rows)), min(sampled, len(rows)))
    out = []
    for done, i in enumerate(chosen, 1):
        same = [j for j in by_intent[str(intents[i])] if j != i]
        out.append({"text_a": texts[i], "text_b": texts[rng.choice(same)], "label": 1})
        similarity = vectors @ vectors[i]
        similarity[intents == intents[i]] = -1.0
        out.append({"text_a": texts[i], "text_b": texts[int(np.argmax(similarity))], "label": 0})
        if done % 1000 == 0:
            print(f"  {done}/{len(chosen)} questions", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clinc", type=Path, help="CLINC150 {text, intent} jsonl")
    parser.add_argument("--banking", type=Path, help="Banking77 text,category CSV")
    parser.add_argument("--per-source", type=int, default=4000, help="questions sampled from each file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pairs = []
    for path, read in ((args.clinc, read_clinc), (args.banking, read_banking)):
        if path is not None:
            print(f"{path.name}: embedding and pairing", file=sys.stderr)
            pairs += pairs_of(read(path), args.per_source, rng)
    rng.shuffle(pairs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(pair) + "\n" for pair in pairs)
    positives = sum(pair["label"] for pair in pairs)
    print(f"{len(pairs)} pairs ({positives} same intent, {len(pairs) - positives} nearest other intent) -> {args.out}")


if __name__ == "__main__":
    main()
