"""What scoring a borderline pair costs with a stored verifier, one pair at a time on one thread, and in batches.

    python bench/verifier_latency.py --verifier-id N [--data ../shared/data/qqp_dev.jsonl] [--pairs 600]
                                     [--use ensemble|cross|boosting] [--one-order] [--json]

One pair: ``PairVerifier.verify`` as the live cache calls it (a fresh pair each time: no memo
holds its texts). Batch: pairs per second through ``scores`` in batches of 64. A cross-encoder
verifier can be timed as its ensemble or as one of its parts (``--use``), and one trained on
both orders as if it scored one (``--one-order``: what scoring both costs).
"""

import argparse
import json
import time
from pathlib import Path

import _setup
import numpy as np

from ai.cache.evaluation import load_pairs
from ai.embeddings.local import local_embedder
from ai.verifier.crossencoder import KIND
from ai.verifier.learn import TrainedVerifier
from ai.verifier.live import PairVerifier
from ai.verifier.models import VerifierModel
from tenants.scoping import unscoped_scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifier-id", type=int, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/qqp_dev.jsonl"))
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--use", choices=["ensemble", "cross", "boosting"], default="ensemble")
    parser.add_argument("--one-order", action="store_true", help="a cross-encoder scores (a, b) only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with unscoped_scope():  # an operator's bench: any stored model, by id
        trained = TrainedVerifier.from_bytes(bytes(VerifierModel.objects.get(pk=args.verifier_id).blob))
    if getattr(trained, "kind", None) == KIND:
        from ai.verifier.crosscalibrate import recalibrate

        trained = recalibrate(trained, target_precision=trained.report["target_precision"], use=args.use)
        trained.both_orders = trained.both_orders and not args.one_order
    embedder = local_embedder()  # no memo: every text is embedded afresh, as a new query would be
    pairs = [(p.text_a, p.text_b) for p in load_pairs(args.data, limit=args.pairs)]
    vectors = embedder.embed([t for pair in pairs[:64] for t in pair]).vectors
    cosines = (list(np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])) * (len(pairs) // 64 + 1))[: len(pairs)]
    verifier = PairVerifier(trained, embedder, trained.min_score)
    verifier.verify(*pairs[0], 0.9)  # warm up

    single = []
    for (a, b), cosine in zip(pairs, cosines, strict=False):
        started = time.perf_counter()
        verifier.verify(a, b, float(min(cosine, 0.96)))
        single.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for start in range(0, len(pairs), 64):
        trained.scores(pairs[start : start + 64], cosines[start : start + 64], embedder)
    per_second = len(pairs) / (time.perf_counter() - started)

    result = {
        "verifier": args.verifier_id,
        "kind": trained.report.get("kind", "boosting"),
        "use": args.use if getattr(trained, "kind", None) == KIND else "boosting",
        "both_orders": getattr(trained, "both_orders", False),
        "pairs": len(pairs),
        "one_pair_ms": _setup.percentiles(single),
        "batch_64_pairs_per_second": round(per_second, 1),
        "machine": _setup.machine(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    p = result["one_pair_ms"]
    orders = ", both orders" if result["both_orders"] else ""
    print(f"verifier #{args.verifier_id} ({result['kind']}, {result['use']}{orders}): one pair p50 {p['p50']:.1f} ms, "
          f"p95 {p['p95']:.1f} ms, p99 {p['p99']:.1f} ms; batches of 64: {per_second:.0f} pairs/s")  # fmt: skip


if __name__ == "__main__":
    main()
