"""Saturation (issue 8): the highest rate of cache hits the gateway serves on this
machine with p99 under 30 ms, and the gateway's own overhead on a miss.

    python bench/saturation_bench.py [--step-seconds 8] [--rates 50,100,...] [--profile] [--json]

Same stack as bench/e2e_bench.py (gunicorn with the product's settings, embedded
services under var/bench, the fake upstream). It primes the cache of two fresh
tenants (bank, forum) with one phrasing per topic, asks each other phrasing once
and keeps those answered by the semantic tier, then offers hits at rising rates
(open loop, Poisson arrivals, latency from the scheduled send time):

    exact      a cached question again (no embedding)
    semantic   a paraphrase that the semantic tier answers, with its letters' case
               shuffled per request so that the embedding memo never answers for it

A stream stops after two steps over 30 ms p99 or under 95% of the offered rate.
Also: each stream at 16 closed-loop clients, and misses at 4 clients (the
overhead = client latency - the upstream's reported sleep). --profile samples
the workers with py-spy during the 16-client runs.
"""

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stack import use_bench_services

use_bench_services()

import _setup  # noqa: E402
import profiling  # noqa: E402
import report  # noqa: E402
import stack  # noqa: E402
from loadgen import Call, CpuMeter, Record, closed_loop, open_loop  # noqa: E402
from workload import Params, build_workload  # noqa: E402

logging.getLogger().setLevel(logging.WARNING)  # this process's own Django logs; the gateway keeps its level

RESULTS = stack.ROOT / "bench" / "results"
P99_LIMIT_MS = 30.0
DEFAULT_RATES = "50,100,150,200,250,300,350,400,500,600,800"


def log(message: str) -> None:
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def shuffled_case(text: str, rng: random.Random) -> str:
    """The same words to the (uncased) embedder, but a text the embedding memo has not seen."""
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.3 else c.lower() for c in text)


def prime(base: str, keys: dict, workload, topics_per_tenant: int, probes: int, clients: int) -> dict:
    """Cache one phrasing per topic, then ask other phrasings once: the pools of exact and semantic texts."""
    first, other = [], []
    for tenant in keys:
        topics = [p for _, p in workload.topics[tenant] if len(p) > 1][:topics_per_tenant]
        first += [(tenant, p[0]) for p in topics]
        other += [(tenant, text) for p in topics for text in p[1 : 1 + probes]]
    primes = [Call(i, tenant, "prime", text) for i, (tenant, text) in enumerate(first)]
    asks = [Call(i, tenant, "probe", text) for i, (tenant, text) in enumerate(other)]
    log(f"priming {len(primes)} questions, then {len(asks)} other phrasings (misses wait for the upstream)")
    primed, _ = asyncio.run(closed_loop(base, keys, primes, clients=clients))
    probed, _ = asyncio.run(closed_loop(base, keys, asks, clients=clients))
    exact = [c for c, r in zip(primes, primed, strict=True) if r.source == "miss" and "stored" in r.stored]
    semantic = [c for c, r in zip(asks, probed, strict=True) if r.source == "semantic"]
    log(f"pools: {len(exact)} cached questions, {len(semantic)} paraphrases answered by the semantic tier")
    return {"exact": exact, "semantic": semantic}


def stream_call(pool: list[Call], tier: str, seed: int):
    rng = random.Random(seed)

    def next_call(index: int) -> Call:
        call = pool[rng.randrange(len(pool))]
        text = shuffled_case(call.text, rng) if tier == "semantic" else call.text
        return Call(index, call.tenant, tier, text)

    return next_call


def step_stats(records: list[Record], wall: float, rate: float, dropped: int, tier: str) -> dict:
    ok = [r for r in records if r.status == 200]
    return {
        "offered_rps": rate,
        "achieved_rps": round(len(ok) / wall, 1),
        "latency_ms": report.pct([r.latency_ms for r in ok]),
        "server_ms": report.pct([r.server_ms for r in ok]),
        "share_of_tier": round(sum(r.source == tier for r in ok) / len(ok), 4) if ok else 0.0,
        "errors": len(records) - len(ok),
        "dropped": dropped,
    }


def cpu_per_request(cores: dict, rps: float) -> dict:
    """CPU milliseconds one request cost each part (cores busy / requests a second)."""
    parts = {k.removesuffix("_cores"): v for k, v in cores.items() if k != "machine_busy_cores"}
    out = {k: round(v * 1000 / rps, 2) for k, v in parts.items()} if rps else {}
    if out:
        out["total"] = round(sum(out.values()), 2)
    return out


def _passes(step: dict) -> bool:
    p99 = step["latency_ms"]["p99"]
    return p99 is not None and p99 <= P99_LIMIT_MS and step["achieved_rps"] >= 0.95 * step["offered_rps"]


def saturate(base: str, keys: dict, pool: list[Call], tier: str, rates: list[float], seconds: float, pids) -> dict:
    steps, bad = [], 0
    for number, rate in enumerate(rates):
        with CpuMeter() as cpu, stack.CpuUse(pids) as use:
            records, wall, dropped = asyncio.run(
                open_loop(base, keys, stream_call(pool, tier, number), rate=rate, seconds=seconds, seed=number)
            )
        step = step_stats(records, wall, rate, dropped, tier)
        step["loadgen_cpu_share"] = round(cpu.share, 3)
        step["cpu_cores"] = use.result
        step["cpu_ms_per_request"] = cpu_per_request(use.result, step["achieved_rps"])
        steps.append(step)
        lat = step["latency_ms"]
        log(f"  {tier} {rate:>5.0f}/s offered: {step['achieved_rps']:>6.1f}/s, p50 {lat['p50']} p99 {lat['p99']} ms")
        bad = 0 if _passes(step) else bad + 1
        if bad >= 2:
            break
        time.sleep(1.0)
    passing = [s for s in steps if _passes(s)]
    best = max(passing, key=lambda s: s["achieved_rps"]) if passing else None
    return {"steps": steps, "max_rps_p99_under_30ms": best["achieved_rps"] if best else None}


def closed16(base: str, keys: dict, pool: list[Call], tier: str, count: int, pids: list[int]) -> dict:
    make = stream_call(pool, tier, 99)
    port, spread = int(base.rsplit(":", 1)[1]), []

    def sample(done: int, _records) -> None:
        if done == count // 2:  # the clients' keep-alive connections, per worker
            spread.extend(stack.connections_per_worker(pids, port))

    with CpuMeter() as cpu, stack.CpuUse(pids) as use:
        calls = [make(i) for i in range(count)]
        records, wall = asyncio.run(closed_loop(base, keys, calls, clients=16, progress=sample))
    stats = step_stats(records, wall, 0, 0, tier)
    stats.pop("offered_rps")
    stats["loadgen_cpu_share"] = round(cpu.share, 3)
    stats["cpu_cores"] = use.result
    stats["cpu_ms_per_request"] = cpu_per_request(use.result, stats["achieved_rps"])
    stats["client_connections_per_worker"] = spread
    return stats


def profiled(base: str, keys: dict, calls: list[Call], label: str, clients: int, folder: Path, pids: list) -> dict:
    """The same load again (not measured) with py-spy on the workers and PostgreSQL's wait events sampled."""
    spies = profiling.record(pids, 8, folder, label) + profiling.record(pids, 8, folder, label, gil=True)
    with profiling.PgWaits() as waits:
        asyncio.run(closed_loop(base, keys, calls, clients=clients))
    for spy in spies:
        spy.wait()
    return {
        "py_spy_threads": profiling.summarise([folder / f"pyspy-{label}-{pid}.txt" for pid in pids]),
        "py_spy_gil": profiling.summarise([folder / f"pyspy-{label}-gil-{pid}.txt" for pid in pids]),
        "postgres_backends_busy": waits.summary(),
    }


def miss_calls(keys: dict, workload, part: int) -> list[Call]:
    """New questions (never cached): the first or second half of each tenant's spare texts."""
    texts = []
    for tenant in keys:
        spare = workload.tenants[tenant].warmup
        half = len(spare) // 2
        texts += [(tenant, text) for text in spare[part * half : (part + 1) * half]]
    return [Call(i, tenant, "miss", text) for i, (tenant, text) in enumerate(texts)]


def misses(base: str, keys: dict, calls: list[Call], upstream_url: str, clients: int) -> dict:
    """Misses at low concurrency: the gateway's overhead = its latency - the upstream's reported sleep."""
    stack.upstream_reset(upstream_url)
    records, _ = asyncio.run(closed_loop(base, keys, calls, clients=clients))
    upstream_log = stack.upstream_calls(upstream_url)
    client, gateway = [], []
    for r in records:
        call = upstream_log.get(r.ref) if r.ref else None
        if call:
            client.append(r.latency_ms - call["sleep_ms"])
            gateway.append(r.server_ms - call["sleep_ms"])
    out = {"clients": clients, "misses": len(client), "overhead_ms": {"client": report.pct(client)}}
    out["overhead_ms"]["gateway"] = report.pct(gateway)
    return out


def sql_counts(key: str, pools: dict, workload, upstream_url: str) -> dict:
    """One request of each kind through Django in this process, counting its SQL statements."""
    os.environ.update({"OPENAI_API_KEY": "bench-key-not-a-secret", "OPENAI_BASE_URL": upstream_url})
    exact = next(c.text for c in pools["exact"] if c.tenant == "bank")
    semantic = next((c.text for c in pools["semantic"] if c.tenant == "bank"), None)
    queries = {"miss": workload.tenants["bank"].warmup[-1], "exact_hit": exact}
    if semantic:
        queries["semantic_hit"] = shuffled_case(semantic, random.Random(5))
    return profiling.sql_per_request(key, queries, warm=exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="offered hit rates per step (req/s)")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--topics", type=int, default=120, help="topics primed per tenant")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="py-spy the workers in the 16-client runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--whatif", default="", help="bench/whatif.py patches for the gateway (experiments)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--update-docs", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    folder = stack.BENCH_VAR / "logs" / f"saturation-{run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    workload = build_workload(Params(seed=args.seed))
    log(f"services under {stack.BENCH_VAR}: {stack.services_up()}")
    stack.redis_flush()
    results = {
        "machine": {**_setup.machine()},
        "date": started.isoformat(timespec="seconds"),
        "command": "python bench/saturation_bench.py " + " ".join(sys.argv[1:]),
        "p99_limit_ms": P99_LIMIT_MS,
    }
    keys, tenants = {}, {}
    for name in ("bank", "forum"):
        data = workload.tenants[name]
        tenants[name], keys[name] = stack.tenant_setup(
            slug=f"sat-{run_id.lower()}-{name}", name=f"Saturation {name}", documents=data.documents,
            examples=data.router_examples, settings={},
        )  # fmt: skip
    with stack.upstream(seed=args.seed, log_dir=folder) as upstream_url:
        with stack.gateway(
            upstream_url=upstream_url, log_dir=folder, semantic_tier=True, workers=args.workers, whatif=args.whatif
        ) as (base, master):
            pids = stack.worker_pids(master, args.workers)
            results["gateway"] = {"workers": len(pids), "threads": 8, "whatif": args.whatif or None}
            pools = prime(base, keys, workload, args.topics, probes=3, clients=16)
            results["pools"] = {tier: len(pool) for tier, pool in pools.items()}
            results["sql_per_request"] = sql_counts(keys["bank"], pools, workload, upstream_url)
            log(f"SQL statements per request: { {k: v['statements'] for k, v in results['sql_per_request'].items()} }")
            results["misses_4_clients"] = misses(base, keys, miss_calls(keys, workload, 0), upstream_url, 4)
            log(f"miss overhead at 4 clients: {results['misses_4_clients']['overhead_ms']}")
            rates = [float(r) for r in args.rates.split(",")]
            for tier in ("exact", "semantic"):
                log(f"{tier} hits: 16 closed-loop clients")
                results[f"{tier}_16_clients"] = closed = closed16(base, keys, pools[tier], tier, 2000, pids)
                log(f"  {closed['achieved_rps']}/s, {closed['latency_ms']}")
                log(f"{tier} hits: open loop, rising rate")
                results[f"{tier}_open_loop"] = saturate(base, keys, pools[tier], tier, rates, args.step_seconds, pids)
            if args.profile:
                log("profiles: py-spy on the workers, PostgreSQL wait events")
                results["profiles"] = {}
                for tier in ("exact", "semantic"):
                    make = stream_call(pools[tier], tier, 7)
                    calls = [make(i) for i in range(1500)]
                    results["profiles"][f"{tier}_16_clients"] = profiled(base, keys, calls, tier, 16, folder, pids)
                calls = miss_calls(keys, workload, 1)
                results["profiles"]["misses_4_clients"] = profiled(base, keys, calls, "miss", 4, folder, pids)
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    text = json.dumps(results, indent=2, default=str)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"saturation-{run_id}.json").write_text(text + "\n")
    variant = "".join(f"-{part}" for part in (args.whatif, f"w{args.workers}" if args.workers != 2 else "") if part)
    (RESULTS / f"saturation{variant}-latest.json").write_text(text + "\n")
    if args.update_docs and not args.whatif and args.workers == 2:
        report.update_docs(stack.ROOT / "docs" / "benchmarks.md", summary(results), marker="e2e-saturation")
    print(text if args.json else summary(results))


def summary(results: dict) -> str:
    lines = [
        "| hits | 16 clients: req/s | p50 / p95 / p99 ms | connections per worker "
        "| CPU ms per request: gateway / PostgreSQL / Redis | highest rate with p99 <= 30 ms (open loop) |",
        "|---|---:|---|---|---|---:|",
    ]
    for tier in ("exact", "semantic"):
        c = results[f"{tier}_16_clients"]
        lat = c["latency_ms"]
        best = results[f"{tier}_open_loop"]["max_rps_p99_under_30ms"]
        cpu = c.get("cpu_ms_per_request", {})
        lines.append(
            f"| {tier} | {c['achieved_rps']:.0f} | {lat['p50']} / {lat['p95']} / {lat['p99']} | "
            f"{' / '.join(map(str, c.get('client_connections_per_worker', [])))} | "
            f"{cpu.get('gateway_workers')} / {cpu.get('postgres')} / {cpu.get('redis')} | "
            f"{'none' if best is None else f'{best:.0f} req/s'} |"
        )
    lines += ["", "| hits | offered req/s | achieved req/s | p50 / p99 ms | cores busy: machine / gateway |"]
    lines.append("|---|---:|---:|---|---|")
    for tier in ("exact", "semantic"):
        for step in results[f"{tier}_open_loop"]["steps"]:
            lat, cores = step["latency_ms"], step["cpu_cores"]
            lines.append(
                f"| {tier} | {step['offered_rps']:.0f} | {step['achieved_rps']:.0f} | {lat['p50']} / {lat['p99']} | "
                f"{cores['machine_busy_cores']} / {cores['gateway_workers_cores']} |"
            )
    m = results["misses_4_clients"]["overhead_ms"]
    lines.append(
        f"\nMiss overhead at 4 clients ({m['client']['n']} misses): client - upstream sleep p50 {m['client']['p50']} / "
        f"p95 {m['client']['p95']} ms; the gateway's own latency_ms - sleep p50 {m['gateway']['p50']} / "
        f"p95 {m['gateway']['p95']} ms."
    )
    sql = results.get("sql_per_request", {})
    if sql:
        answered = ", ".join(f"{v['answered_by']} {v['statements']}" for v in sql.values())
        lines.append(f"SQL statements per request, by what answered it: {answered}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
