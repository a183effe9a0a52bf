"""Dev data for ``manage.py eval_e2e`` from CLINC150: each of N intents becomes an FAQ entry
(its question one training phrasing, its answer the intent's name and two more training
phrasings), rephrasings come from the validation phrasings of the same intent (similar
pairs) and of another chosen intent (dissimilar pairs).

    python bench/faq_pairs.py --out var/faq-dev --intents 60
    python manage.py eval_e2e --faq var/faq-dev/faq.jsonl --pairs var/faq-dev/pairs.csv \\
        --oos ../shared/data/clinc150/oos_val.jsonl --tenant faq-dev-1
"""

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clinc150"


def _by_intent(path: Path) -> dict[str, list[str]]:
    grouped = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            grouped[row["intent"]].append(row["text"])
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--intents", type=int, default=60)
    parser.add_argument("--similar", type=int, default=3, help="rephrasings per entry")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    train, val = _by_intent(args.data / "train.jsonl"), _by_intent(args.data / "val.jsonl")
    chosen = rng.sample(sorted(train), args.intents)
    args.out.mkdir(parents=True, exist_ok=True)
    faq, pairs = [], []
    for intent in chosen:
        question, *related = rng.sample(train[intent], 3)
        answer = f"{intent.replace('_', ' ').capitalize()}. This entry also covers: {related[0]}; {related[1]}."
        faq.append({"question": question, "answer": answer, "intent": intent})
    for entry in faq:
        for text in rng.sample(val[entry["intent"]], args.similar):
            pairs.append((entry["question"], text, 1))
        other = rng.choice([o for o in chosen if o != entry["intent"]])
        pairs.append((entry["question"], rng.choice(val[other]), 0))
    (args.out / "faq.jsonl").write_text("".join(json.dumps(row) + "\n" for row in faq))
    with (args.out / "pairs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question_1", "question_2", "similar"])
        writer.writerows(pairs)
    print(f"{len(faq)} FAQ entries, {len(pairs)} pairs in {args.out}")


if __name__ == "__main__":
    main()
