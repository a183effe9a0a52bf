"""Cache lookup latency per tier and backend, memory per entry, embedding latency,
and RedisVL's SemanticCache.check() as the peer, on one Redis and one set of vectors.

    python bench/cache_bench.py [--sizes 1000,10000,100000] [--lookups 2000] [--json]

Runs its own Redis 8 (vector sets + RediSearch) in a temporary folder. Lookup
times exclude the embedding, which is measured on its own (one 15-token query,
one thread).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import _setup
import numpy as np
import redis

from ai.cache import build_cache
from ai.cache.entries import CacheEntry
from ai.cache.keys import CacheScope
from saascore.embedded import EmbeddedRedis

DIM = 384
RESPONSE = "A cached answer of about two hundred bytes. " * 4
QUERY_15_TOKENS = "How do I reset my password on the billing dashboard page today?"


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def near(vectors: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    noise = unit(rng.standard_normal(vectors.shape))
    noise -= (noise * vectors).sum(axis=1, keepdims=True) * vectors
    noise = unit(noise)
    return unit(cosine * vectors + np.sqrt(1 - cosine**2) * noise)


def timed(fn, arguments) -> tuple[list[float], list]:
    samples, results = [], []
    for argument in arguments:
        started = time.perf_counter()
        results.append(fn(argument))
        samples.append((time.perf_counter() - started) * 1000)
    return samples, results


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def wait_for_indexing(client, index: str, timeout: float = 1800.0) -> None:
    """RediSearch indexes in the background: measure lookups only once it is done."""
    deadline = time.monotonic() + timeout
    while float(client.ft(index).info().get("percent_indexed", 1)) < 1.0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{index} still indexing after {timeout} s")
        time.sleep(0.5)


def bench_ours(client, backend: str, tenant: int, vectors, lookups, probes) -> dict:
    cache = build_cache(client, backend=backend)
    scope = CacheScope(tenant, "bench-embedder")
    generation = cache.lookup_exact(scope, "warm-up").generation
    before = used_memory(client)
    for start in range(0, len(vectors), 10_000):
        chunk = [
            (CacheEntry(query=f"question {start + i}", response=RESPONSE), v)
            for i, v in enumerate(vectors[start : start + 10_000])
        ]
        cache.store_many(scope, generation, chunk, ttl=86400)
        _setup.progress(f"  store {backend}", start + len(chunk), len(vectors))
    if backend == "redisearch":
        wait_for_indexing(client, scope.index_name(DIM))
    per_entry = (used_memory(client) - before) / len(vectors)
    exact_ms, exact = timed(lambda i: cache.lookup_exact(scope, f"question {i}"), lookups)
    semantic_ms, semantic = timed(
        lambda pair: cache.lookup_semantic(scope, generation, f"similar question {pair[0]}", pair[1], 0.9),
        list(zip(lookups, probes, strict=True)),
    )
    return {
        "exact": _setup.percentiles(exact_ms),
        "semantic": _setup.percentiles(semantic_ms),
        "exact_hit_rate": round(sum(bool(r.hit) for r in exact) / len(exact), 3),
        "semantic_hit_rate": round(sum(bool(r.hit) for r in semantic) / len(semantic), 3),
        "bytes_per_entry": round(per_entry),
    }


def bench_redisvl(client, size: int, vectors, probes) -> dict:
    from redisvl.extensions.cache.llm import SemanticCache as RedisVLCache
    from redisvl.utils.vectorize import CustomVectorizer

    vectorizer = CustomVectorizer(embed=lambda text: [0.0] * DIM)
    peer = RedisVLCache(
        name=f"redisvl{size}", redis_client=client, distance_threshold=0.1, vectorizer=vectorizer, overwrite=True
    )
    before = used_memory(client)
    for i, vector in enumerate(vectors):
        peer.store(prompt=f"question {i}", response=RESPONSE, vector=vector.tolist())
        if (i + 1) % 10_000 == 0 or i + 1 == len(vectors):
            _setup.progress("  store redisvl", i + 1, len(vectors))
    per_entry = (used_memory(client) - before) / len(vectors)
    probe_lists = [q.tolist() for q in probes]
    check_ms, found = timed(lambda q: peer.check(vector=q), probe_lists)
    return {
        "semantic": _setup.percentiles(check_ms),
        "semantic_hit_rate": round(sum(bool(r) for r in found) / len(found), 3),
        "bytes_per_entry": round(per_entry),
    }


def bench_embedding(runs: int = 500) -> dict:
    from ai.embeddings.local import local_embedder

    embedder = local_embedder()
    tokens = int(embedder.encode([QUERY_15_TOKENS])[1].sum())
    for _ in range(30):
        embedder.embed([QUERY_15_TOKENS])
    samples, _ = timed(lambda _: embedder.embed([QUERY_15_TOKENS]), range(runs))
    return {"model": embedder.id, "tokens": tokens, "threads": 1, **_setup.percentiles(samples)}


def run(sizes: list[int], lookups: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    results: dict = {"machine": _setup.machine(), "dim": DIM, "lookups": lookups, "sizes": {}}
    results["embedding"] = bench_embedding()
    for size in sizes:
        _setup.progress(f"size {size}", 0, 1)
        vectors = unit(rng.standard_normal((size, DIM)))
        picks = rng.integers(0, size, lookups)
        probes = near(vectors[picks], 0.95, rng)
        with tempfile.TemporaryDirectory() as folder:
            server = EmbeddedRedis(Path(folder) / "data", Path(folder) / "r.sock", maxmemory="8gb")
            server.start()
            try:
                client = redis.Redis(unix_socket_path=str(server.socket))
                results["sizes"][size] = {
                    "vectorset": bench_ours(client, "vectorset", 1, vectors, list(picks), probes),
                    "redisearch": bench_ours(client, "redisearch", 2, vectors, list(picks), probes),
                    "redisvl": bench_redisvl(client, size, vectors, probes),
                }
            finally:
                server.stop()
    return results


def table(results: dict) -> str:
    e = results["embedding"]
    lines = [
        f"embedding ({e['model']}, {e['tokens']} tokens, 1 thread): p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms",
        "",
        "| entries | backend | exact p50 / p99 ms | semantic p50 / p99 ms | semantic hit rate | bytes/entry |",
        "|---:|---|---|---|---:|---:|",
    ]
    for size, backends in results["sizes"].items():
        for name, r in backends.items():
            exact = f"{r['exact']['p50']:.3f} / {r['exact']['p99']:.3f}" if "exact" in r else "–"
            semantic = f"{r['semantic']['p50']:.3f} / {r['semantic']['p99']:.3f}"
            lines.append(
                f"| {int(size):,} | {name} | {exact} | {semantic} | {r['semantic_hit_rate']:.3f} | "
                f"{r['bytes_per_entry']:,} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run([int(s) for s in args.sizes.split(",")], args.lookups, args.seed)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
