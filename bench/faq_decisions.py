"""The semantic tier's hit decision on an FAQ tenant, offline: the table behind the
end-to-end FAQ figures (docs/benchmarks.md, issue 17), without the pipeline around it.

Each first question of the pairs file is a cached question (eval_e2e asks them first);
each second question meets its nearest cached question by cosine (the local embedder).
A hit is right when that cached question is the FAQ entry a similar pair says it
rephrases; recall is over the rephrasings (similar pairs), precision over every hit, as
``manage.py eval_e2e`` counts them. Rows: cosine thresholds, with the guards, then with
each verifier at its own cutoff and at fixed cutoffs, each also without the hits a rival
refuses (``HitJudge.rivalled`` at ``AI["AMBIGUITY_MARGIN"]`` or ``--margin``, among the 4
nearest cached questions, each FAQ question about its own entry); and each score's ranking
(AUC) among the candidates at cosine >= 0.65 that the guards pass.

``--folds K``: thresholds from the tenant's own labels, cross-validated. The second questions
are split by FAQ entry into K folds; for each, the rule above (threshold, rival check,
verifier cutoff) with the most right hits among those reaching ``--target-precision`` on the
other folds' labelled candidates is chosen, as ``eval_cache --tenant --target-precision
--apply`` chooses from a tenant's feedback, and scored on the fold it never saw.

    python bench/faq_pairs.py --covid --out var/covid-dev
    python bench/faq_decisions.py --pairs var/covid-dev/pairs.csv [--verifier-id 3] [--folds 5] [--json]
"""

import argparse
import json
from pathlib import Path

import _setup  # noqa: F401  (Django)
import numpy as np

from ai.cache.judge import HitJudge, guard_veto
from ai.embeddings import get_embedder
from ai.faq_evaluation import read_pairs, same_text
from ai.verifier.evalchoice import stored_verifier
from ai.verifier.live import PairVerifier, default_verifier
from saascore.conf import ai_settings

THRESHOLDS = (0.75, 0.80, 0.85, 0.90)
CANDIDATES = 4  # the live cache's vector search returns this many
CUTOFFS = (0.5, 0.7, 0.8, 0.9)


def stored(pk: int) -> PairVerifier:
    embedder = get_embedder()
    trained = stored_verifier(pk, embedder)
    return PairVerifier(trained, embedder, trained.min_score, name=f"#{pk}")


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return None
    greater = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return round(float(greater / (len(positives) * len(negatives))), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, type=Path, help="CSV question_1,question_2,similar (eval_e2e's)")
    parser.add_argument("--verifier-id", type=int, action="append", default=[], help="a stored global verifier too")
    parser.add_argument("--margin", type=float, help="the ambiguity margin (default: the AI setting)")
    parser.add_argument("--folds", type=int, default=0, help="choose a rule on K-1 folds of entries, score the K-th")
    parser.add_argument("--target-precision", type=float, default=0.95, help="what --folds chooses for")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    margin = ai_settings.AMBIGUITY_MARGIN if args.margin is None else args.margin

    pairs = read_pairs(args.pairs)
    cached = list(dict.fromkeys(p.question_1 for p in pairs))
    seconds = list(dict.fromkeys(p.question_2 for p in pairs))
    entry = {p.question_2: same_text(p.question_1) for p in pairs if p.similar}
    embedder = get_embedder()
    cached_vectors = embedder.embed(cached).vectors
    similarity = embedder.embed(seconds).vectors @ cached_vectors.T
    nearest, cosine = similarity.argmax(1), similarity.max(1)
    judge = HitJudge(ambiguity_margin=margin)

    def rivalled(row: int, threshold: float) -> bool:
        found = np.argsort(-similarity[row])[:CANDIDATES]  # nearest first: the chosen one is 0
        abouts = [(int(n),) for n in found]  # each FAQ question is about its own entry
        return judge.rivalled(0, similarity[row, found], cached_vectors[found], abouts, threshold)

    candidates = [(question, cached[n]) for question, n in zip(seconds, nearest, strict=True)]
    right = np.array([entry.get(q) == same_text(c) for q, c in candidates])
    vetoed = np.array([guard_veto(q, c) is not None for q, c in candidates])
    rephrasings = len(entry)

    verifiers = [v for v in [default_verifier()] if v is not None] + [stored(pk) for pk in args.verifier_id]
    scores = {v.name: np.asarray(v.trained.scores(candidates, list(cosine), embedder)) for v in verifiers}

    def rates(mask: np.ndarray) -> dict:
        hits, good = int(mask.sum()), int((mask & right).sum())
        precision = round(good / hits, 3) if hits else None
        return {"hits": hits, "precision": precision, "recall": round(good / rephrasings, 3)}

    rows, masks = [], []
    for threshold in THRESHOLDS:
        passed = (cosine >= threshold) & ~vetoed
        alone = passed & ~np.array([rivalled(row, threshold) for row in range(len(seconds))])
        for rival_check, base in ((False, passed), (True, alone)):
            row = {"threshold": threshold, "no_rival": rival_check}
            rows.append(row | {"verifier": None, "cutoff": None, **rates(base)})
            masks.append(base)
            for verifier in verifiers:
                for cutoff in sorted({round(verifier.min_score, 3), *CUTOFFS}):
                    kept = base & (scores[verifier.name] >= cutoff)
                    rows.append(row | {"verifier": verifier.name, "cutoff": cutoff, **rates(kept)})
                    masks.append(kept)
    band = (cosine >= 0.65) & ~vetoed
    ranking = {"cosine": auc(right[band], cosine[band])} | {n: auc(right[band], s[band]) for n, s in scores.items()}
    entries = sorted({same_text(p.question_1) for p in pairs})
    entry_of = {p.question_2: same_text(p.question_1) for p in pairs}
    fold = np.array([entries.index(entry_of[q]) % args.folds for q in seconds]) if args.folds else None
    result = {
        "pairs": str(args.pairs),
        "cached_questions": len(cached),
        "second_questions": len(seconds),
        "rephrasings": rephrasings,
        "nearest_is_right": round(float(right.sum()) / rephrasings, 3),
        "ambiguity_margin": margin,
        "auc_in_band": ranking,
        "rows": rows,
    }
    if fold is not None:
        result["chosen_by_folds"] = chosen_by_folds(rows, masks, right, fold, args.folds, args.target_precision,
                                                    rephrasings)  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{len(cached)} cached questions, {len(seconds)} second questions ({rephrasings} rephrasings); "
        f"the nearest cached question is the right one for {result['nearest_is_right']:.0%} of the rephrasings"
    )
    aucs = ", ".join(f"{name} {value}" for name, value in ranking.items())
    print(f"AUC among candidates at cosine >= 0.65 the guards pass: {aucs}")
    if fold is not None:
        chosen = result["chosen_by_folds"]
        print(
            f"chosen on {args.folds - 1} of {args.folds} folds of entries for precision {args.target_precision}, "
            f"scored on the other: {chosen['hits']} hits, precision {chosen['precision']}, recall {chosen['recall']} "
            f"(rules: {'; '.join(chosen['rules'])})"
        )
    print(f"{'cosine >=':>9}  {'no rival':>8}  {'verifier':>9}  {'cutoff':>6}  {'hits':>4}  {'precision':>9}  recall")
    for row in rows:
        precision = "–" if row["precision"] is None else f"{row['precision']:.2f}"
        print(
            f"{row['threshold']:>9.2f}  {margin if row['no_rival'] else '':>8}  {row['verifier'] or 'guards':>9}  "
            f"{row['cutoff'] or '':>6}  {row['hits']:>4}  {precision:>9}  {row['recall']:>6.2f}"
        )


def chosen_by_folds(
    rows: list[dict], masks: list[np.ndarray], right: np.ndarray, fold: np.ndarray, folds: int, target: float,
    rephrasings: int,
) -> dict:  # fmt: skip
    """Per fold, the rule with the most right hits among those reaching ``target`` on the other
    folds (none: no hits), applied to the fold; the hits of all folds together."""
    hits = good = 0
    rules = []
    for k in range(folds):
        train, test = fold != k, fold == k
        best, best_good = None, -1
        for row, mask in zip(rows, masks, strict=True):
            taken, correct = int((mask & train).sum()), int((mask & train & right).sum())
            if taken and correct / taken >= target and correct > best_good:
                best, best_good = (row, mask), correct
        if best is None:
            rules.append("none")
            continue
        row, mask = best
        rival = "no rival" if row["no_rival"] else "rivals allowed"
        rules.append(f"cosine {row['threshold']}, {rival}, {row['verifier'] or 'no verifier'} {row['cutoff'] or ''}")
        hits += int((mask & test).sum())
        good += int((mask & test & right).sum())
    precision = round(good / hits, 3) if hits else None
    return {"hits": hits, "precision": precision, "recall": round(good / rephrasings, 3), "rules": rules}


if __name__ == "__main__":
    main()
