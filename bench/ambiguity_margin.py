"""How the ambiguity margin (``AI["AMBIGUITY_MARGIN"]``, ``HitJudge.rivalled``) trades hits for
precision, on Banking77: the data the default was chosen on (docs/decisions.md).

A cache holds ``--per-category`` phrasings of each of the 77 categories (each "about" its
category, as a tenant's entry is about the document its question is nearest); ``--asked``
other phrasings are asked; a hit on the nearest cached phrasing is right when it is of the
same category. For each threshold and margin: hits, precision, and the share of hits kept.

    python bench/ambiguity_margin.py [--per-category 3] [--asked 1500] [--json]
"""

import argparse
import csv
import json
import random

import _setup
import numpy as np

from ai.cache.judge import HitJudge, guard_veto
from ai.embeddings import get_embedder

BANKING77 = _setup.ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.90)
MARGINS = (0.0, 0.03, 0.05, 0.08)
CANDIDATES = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=3)
    parser.add_argument("--asked", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows = list(csv.DictReader(BANKING77.open(encoding="utf-8")))
    random.Random(args.seed).shuffle(rows)
    categories = sorted({row["category"] for row in rows})
    cached, cached_category, asked, asked_category, taken = [], [], [], [], dict.fromkeys(categories, 0)
    for row in rows:
        category = categories.index(row["category"])
        if taken[row["category"]] < args.per_category:
            cached.append(row["text"])
            cached_category.append(category)
            taken[row["category"]] += 1
        elif len(asked) < args.asked:
            asked.append(row["text"])
            asked_category.append(category)
    embedder = get_embedder()
    vectors = embedder.embed(cached).vectors
    similarity = embedder.embed(asked).vectors @ vectors.T
    order = np.argsort(-similarity, axis=1)[:, :CANDIDATES]
    nearest = order[:, 0]
    cosine = similarity[np.arange(len(asked)), nearest]
    right = np.array(cached_category)[nearest] == np.array(asked_category)
    vetoed = np.array([guard_veto(q, cached[n]) is not None for q, n in zip(asked, nearest, strict=True)])

    def rivalled(judge: HitJudge, i: int, threshold: float) -> bool:
        found = order[i]
        abouts = [(cached_category[n],) for n in found]
        return judge.rivalled(0, similarity[i, found], vectors[found], abouts, threshold)

    results = []
    for threshold in THRESHOLDS:
        passed = (cosine >= threshold) & ~vetoed
        for margin in MARGINS:
            judge = HitJudge(ambiguity_margin=margin)
            alone = np.array([not rivalled(judge, i, threshold) for i in range(len(asked))])
            hits = passed & alone
            results.append(
                {
                    "threshold": threshold,
                    "margin": margin,
                    "hits": int(hits.sum()),
                    "precision": round(float(right[hits].mean()), 3) if hits.any() else None,
                    "hits_kept": round(float(hits.sum() / passed.sum()), 3) if passed.any() else None,
                }
            )
    summary = {"cached": len(cached), "asked": len(asked), "candidates": CANDIDATES, "rows": results}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"Banking77: {len(cached)} cached phrasings, {len(asked)} asked; a hit is right in the same category")
    print(f"{'cosine >=':>9}  {'margin':>6}  {'hits':>5}  {'precision':>9}  hits kept")
    for r in results:
        precision = "–" if r["precision"] is None else f"{r['precision']:.3f}"
        print(f"{r['threshold']:>9.2f}  {r['margin']:>6.2f}  {r['hits']:>5}  {precision:>9}  {r['hits_kept']}")


if __name__ == "__main__":
    main()
