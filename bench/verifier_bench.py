"""What the verifier adds to a semantic hit: the time of one ``verify`` call on one thread, for
borderline QQP pairs (cosine 0.80-0.97, where the live cache asks it), in three states:

- cold: neither question's token states known (two forward passes, the features, the model);
- query warm: the query was just embedded (its states kept from that pass), as on a live
  semantic lookup the first time a cached question is a candidate;
- both warm: the cached question was verified before (its states kept too), as for a
  cached question that is a candidate again.

    python bench/verifier_bench.py [--pairs 300] [--json]
"""

import argparse
import json
import time

import _setup

from ai.cache.evaluation import load_pairs
from ai.embeddings import get_embedder
from ai.verifier.live import default_verifier

QQP = _setup.ROOT.parent / "shared" / "data" / "qqp_dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    verifier = default_verifier()
    if verifier is None:
        raise SystemExit("No default verifier (AI['DEFAULT_VERIFIER']): nothing to time")
    embedder = get_embedder()
    inner = getattr(embedder, "inner", embedder)
    pairs, cosines = [], []
    for pair in load_pairs(QQP, limit=4000):  # the pairs the default was not trained on
        a, b = embedder.embed([pair.text_a, pair.text_b]).vectors
        cosine = float(a @ b)
        if 0.80 <= cosine < 0.97:
            pairs.append((pair.text_a, pair.text_b))
            cosines.append(cosine)
        if len(pairs) >= args.pairs:
            break
    verifier.verify(*pairs[0], cosines[0])  # the first call loads scikit-learn's code paths
    timings = {"cold": [], "query_warm": [], "both_warm": []}
    for (query, candidate), cosine in zip(pairs, cosines, strict=True):
        inner._states.pop(query, None)
        inner._states.pop(candidate, None)
        started = time.perf_counter()
        verifier.verify(query, candidate, cosine)
        timings["cold"].append(time.perf_counter() - started)
        inner._states.pop(query, None)
        inner.embed([query])  # a live lookup embeds the query first: its states are kept
        inner._states.pop(candidate, None)
        started = time.perf_counter()
        verifier.verify(query, candidate, cosine)
        timings["query_warm"].append(time.perf_counter() - started)
        started = time.perf_counter()
        verifier.verify(query, candidate, cosine)
        timings["both_warm"].append(time.perf_counter() - started)
    result = {"pairs": len(pairs), "verifier": verifier.name}
    result |= {state: _setup.percentiles([s * 1000 for s in seconds]) for state, seconds in timings.items()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"verify() on {len(pairs)} borderline QQP pairs, one thread ({verifier.name} verifier):")
    for state in timings:
        print(f"  {state:10s}  p50 {result[state]['p50']:6.2f} ms   p95 {result[state]['p95']:6.2f} ms   "
              f"p99 {result[state]['p99']:6.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
