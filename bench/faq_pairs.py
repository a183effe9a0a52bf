"""Dev data for ``manage.py eval_e2e``, written to ``--out`` (faq.jsonl and pairs.csv).

From CLINC150 (the default): each of N intents becomes an FAQ entry (its question one
training phrasing, its answer the intent's name and two more training phrasings),
rephrasings come from the validation phrasings of the same intent (similar pairs) and of
another chosen intent (dissimilar pairs).

With ``--covid``: the COVID FAQ and our own 150 questions about it
(bench/data/covid_faq_rephrasings.jsonl: 100 rephrasings of 50 entries, 50 near-misses),
joined with the FAQ's questions here, so the repository holds only our own text.

    python bench/faq_pairs.py --out var/faq-dev --intents 60
    python bench/faq_pairs.py --covid --out var/covid-dev
    python manage.py eval_e2e --faq var/covid-dev/faq.jsonl --pairs var/covid-dev/pairs.csv \\
        --oos ../shared/data/clinc150/oos_val.jsonl --tenant covid-dev-1
"""

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = SHARED / "clinc150"
COVID_FAQ = SHARED / "covid_faq" / "faq.jsonl"
COVID_REPHRASINGS = Path(__file__).resolve().parent / "data" / "covid_faq_rephrasings.jsonl"


def covid(out: Path, faq_path: Path = COVID_FAQ) -> tuple[int, int]:
    """The COVID FAQ and the pairs of our rephrasings (``entry``: the FAQ line they are about)."""
    lines = [line for line in faq_path.read_text().splitlines() if line.strip()]
    faq = [json.loads(line) for line in lines]
    rows = [json.loads(line) for line in COVID_REPHRASINGS.read_text().splitlines() if line.strip()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "faq.jsonl").write_text("".join(line + "\n" for line in lines))
    _write_pairs(out, [(faq[r["entry"]]["question"].strip(), r["question"], int(r["similar"])) for r in rows])
    return len(faq), len(rows)


def _write_pairs(out: Path, pairs: list[tuple[str, str, int]]) -> None:
    with (out / "pairs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question_1", "question_2", "similar"])
        writer.writerows(pairs)


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
    parser.add_argument("--covid", action="store_true", help="the COVID FAQ and our rephrasings of it")
    args = parser.parse_args()
    if args.covid:
        entries, pairs = covid(args.out)
        print(f"{entries} FAQ entries, {pairs} pairs in {args.out}")
        return
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
    _write_pairs(args.out, pairs)
    print(f"{len(faq)} FAQ entries, {len(pairs)} pairs in {args.out}")


if __name__ == "__main__":
    main()
