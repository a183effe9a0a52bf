"""Saturation (issue 8): the highest rate of cache hits the gateway serves on this
machine with p99 under 30 ms, and the gateway's own overhead on a miss.

    python bench/saturation_bench.py [--step-seconds 8] [--rates 50,100,...] [--profile] [--json]
    python bench/saturation_bench.py --no-peer --rates "" --steps hits,in_flight --ai REDIS_MAX_CONNECTIONS=512

Same stack as bench/e2e_bench.py (``gunicorn -c saascore/gunicorn_conf.py
saascore.asgi:application``, 2 uvicorn workers; embedded services under var/bench;
the fake upstream), and the same steps against the peer, the LiteLLM proxy
(bench/peer_litellm.py) with its exact and its semantic cache. It primes the cache of two fresh
tenants (bank, forum) with one phrasing per topic, asks each other phrasing once
and keeps those answered by the semantic tier, then offers hits at rising rates
(open loop, Poisson arrivals, latency from the scheduled send time):

    exact      a cached question again (no embedding)
    semantic   a paraphrase that the semantic tier answers, made a new text per request
               by invisible characters (below), so that neither the embedding memo
               nor the exact alias that the product stores for a semantic hit answers

A stream stops after two steps over 30 ms p99 or under 95% of the offered rate.
Also: each stream at 16 closed-loop clients, and misses at 4 clients (the
overhead = client latency - the upstream's reported sleep). --profile samples
the workers with py-spy during the 16-client runs.

Held in flight: 1,000 concurrent misses wait on an upstream that sleeps a fixed
5 s, while 16 other closed-loop clients ask exact hits; refusals (non-200) among
the misses, the hits' latency meanwhile, and the workers' resident memory during
minus before, per miss in flight.

CPU per request of each kind (the gateway's processes, PostgreSQL's and Redis's
trees) and PostgreSQL's counters (pg_stat_database: transactions, rows) per request
over each step; SQL statements of one request of each kind in-process.

``--steps`` runs some of the steps only (the priming always runs: it makes the pools):
sql (statements per request), misses (overhead at 4 clients), hits (16 clients, and the
open loop unless --rates ""), in_flight. ``--ai KEY=VALUE`` (a JSON value, repeatable)
sets an ``AI`` setting of the gateway, for A/B runs (docs/benchmarks.md, "Admission of
misses", ran ``--ai MISS_PREPARE_CONCURRENCY=N`` on commit c58a57f).
"""

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from stack import use_bench_services

use_bench_services()

import _setup  # noqa: E402
import peer_litellm  # noqa: E402
import profiling  # noqa: E402
import report  # noqa: E402
import stack  # noqa: E402
from loadgen import Call, CpuMeter, Record, closed_loop, open_loop  # noqa: E402
from workload import Params, build_workload  # noqa: E402

logging.getLogger().setLevel(logging.WARNING)  # this process's own Django logs; the gateway keeps its level

RESULTS = stack.ROOT / "bench" / "results"
P99_LIMIT_MS = 30.0
DEFAULT_RATES = "50,100,150,200,250,300,350,400,500,600,800"
IN_FLIGHT = 1000
IN_FLIGHT_UPSTREAM_MS = 5000.0
STEPS = ("sql", "misses", "hits", "in_flight")


def log(message: str) -> None:
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def unseen_variant(text: str, number: int) -> str:
    """The same tokens to the embedder, but a text neither the exact tier nor the embedding memo has
    seen: ``number`` in binary as zero-width characters (U+200B, U+200C) at the end. The exact
    tier's normalisation (NFKC, casefold, whitespace) keeps them; BERT's tokenizer drops format
    characters, so the vector is the paraphrase's own. (Changing the letters' case no longer
    does: the exact tier casefolds, and a semantic hit now stores an exact alias.)"""
    return text + "".join("\u200b" if bit == "0" else "\u200c" for bit in f"{number:b}")


def prime(
    base: str, keys: dict, workload, topics_per_tenant: int, probes: int, clients: int, api: str = "saascore"
) -> dict:
    """Cache one phrasing per topic, then ask other phrasings once: the pools of exact and semantic texts."""
    first, other = [], []
    for tenant in keys:
        topics = [p for _, p in workload.topics[tenant] if len(p) > 1][:topics_per_tenant]
        first += [(tenant, p[0]) for p in topics]
        other += [(tenant, text) for p in topics for text in p[1 : 1 + probes]]
    primes = [Call(i, tenant, "prime", text) for i, (tenant, text) in enumerate(first)]
    asks = [Call(i, tenant, "probe", text) for i, (tenant, text) in enumerate(other)]
    log(f"priming {len(primes)} questions, then {len(asks)} other phrasings (misses wait for the upstream)")
    primed, _ = asyncio.run(closed_loop(base, keys, primes, clients=clients, api=api))
    if api == "litellm":  # the proxy stores every 200 answer; its hits on other phrasings are semantic
        exact = [c for c, r in zip(primes, primed, strict=True) if r.status == 200]
        if probes == 0:
            return {"exact": exact, "semantic": []}
        probed, _ = asyncio.run(closed_loop(base, keys, asks, clients=clients, api=api))
        semantic = [c for c, r in zip(asks, probed, strict=True) if r.source == "exact"]
    else:
        probed, _ = asyncio.run(closed_loop(base, keys, asks, clients=clients))
        exact = [c for c, r in zip(primes, primed, strict=True) if r.source == "miss" and "stored" in r.stored]
        semantic = [c for c, r in zip(asks, probed, strict=True) if r.source == "semantic"]
    log(f"pools: {len(exact)} cached questions, {len(semantic)} paraphrases answered by the semantic tier")
    return {"exact": exact, "semantic": semantic}


def stream_call(pool: list[Call], tier: str, seed: int):
    rng = random.Random(seed)

    def next_call(index: int) -> Call:
        call = pool[rng.randrange(len(pool))]
        text = unseen_variant(call.text, seed * 1_000_000 + index) if tier == "semantic" else call.text
        return Call(index, call.tenant, tier, text)

    return next_call


def step_stats(records: list[Record], wall: float, rate: float, dropped: int, tier: str, peer: bool = False) -> dict:
    """``peer``: the LiteLLM proxy, whose hits all say "exact" (a cache hit)."""
    ok = [r for r in records if r.status == 200]
    return {
        "offered_rps": rate,
        "achieved_rps": round(len(ok) / wall, 1),
        "latency_ms": report.pct([r.latency_ms for r in ok]),
        "server_ms": report.pct([r.server_ms for r in ok]),
        "share_of_tier": round(sum(r.source in (tier, "exact") if peer else r.source == tier for r in ok) / len(ok), 4)
        if ok
        else 0.0,
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


def closed16(
    base: str, keys: dict, pool: list[Call], tier: str, count: int, pids: list[int], api: str = "saascore"
) -> dict:
    make = stream_call(pool, tier, 99)
    port, spread = int(base.rsplit(":", 1)[1]), []

    def sample(done: int, _records) -> None:
        if done == count // 2:  # the clients' keep-alive connections, per worker
            spread.extend(stack.connections_per_worker(pids, port))

    pg_before = profiling.pg_counters()
    with CpuMeter() as cpu, stack.CpuUse(pids) as use:
        calls = [make(i) for i in range(count)]
        records, wall = asyncio.run(closed_loop(base, keys, calls, clients=16, progress=sample, api=api))
    stats = step_stats(records, wall, 0, 0, tier, peer=api == "litellm")
    stats["postgres_per_request"] = profiling.pg_per_request(pg_before, profiling.pg_counters(), len(records))
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


def misses(
    base: str, keys: dict, calls: list[Call], upstream_url: str, clients: int, pids: list[int], api: str = "saascore"
) -> dict:
    """Misses at low concurrency: the gateway's overhead = its latency - the upstream's reported sleep;
    CPU per miss (the embedding, routing, retrieval and ledger; not the upstream's)."""
    stack.upstream_reset(upstream_url)
    pg_before = profiling.pg_counters()
    with stack.CpuUse(pids) as use:
        records, wall = asyncio.run(closed_loop(base, keys, calls, clients=clients, api=api))
    pg_after = profiling.pg_counters()
    upstream_log = stack.upstream_calls(upstream_url)
    client, gateway = [], []
    for r in records:
        call = upstream_log.get(r.ref) if r.ref else None
        if call:
            client.append(r.latency_ms - call["sleep_ms"])
            if r.server_ms is not None:
                gateway.append(r.server_ms - call["sleep_ms"])
    out = {"clients": clients, "misses": len(client), "overhead_ms": {"client": report.pct(client)}}
    out["overhead_ms"]["gateway"] = report.pct(gateway)
    out["cpu_ms_per_request"] = cpu_per_request(use.result, len(records) / wall)
    out["postgres_per_request"] = profiling.pg_per_request(pg_before, pg_after, len(records))
    out["errors"] = sum(r.status != 200 for r in records)
    return out


def in_flight(
    base: str, keys: dict, misses_texts: list[Call], hits: list[Call], pids: list[int], api: str = "saascore"
) -> dict:
    """IN_FLIGHT concurrent misses on the 5 s upstream, and 16 closed-loop clients asking exact hits meanwhile."""
    import threading

    rss_before = stack.rss_bytes(pids)
    peak = {"rss": rss_before}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak["rss"] = max(peak["rss"], stack.rss_bytes(pids))

    async def both() -> tuple:
        held = asyncio.create_task(closed_loop(base, keys, misses_texts, clients=len(misses_texts), api=api))
        await asyncio.sleep(1.0)  # the misses are in flight
        make = stream_call(hits, "exact", 11)
        began = time.perf_counter()
        hit_records = []
        while time.perf_counter() - began < IN_FLIGHT_UPSTREAM_MS / 1000 - 2 and not held.done():
            batch, _ = await closed_loop(base, keys, [make(i) for i in range(160)], clients=16, api=api)
            hit_records += batch
        return await held, hit_records

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with stack.CpuUse(pids) as use:
        (held, wall), hit_records = asyncio.run(both())
    done.set()
    sampler.join()
    ok_hits = [r for r in hit_records if r.status == 200]
    refused = [r for r in held if r.status != 200]
    grown = peak["rss"] - rss_before
    return {
        "concurrent": len(misses_texts),
        "upstream_sleep_ms": IN_FLIGHT_UPSTREAM_MS,
        "refused": len(refused),
        "refusal_statuses": dict(Counter(r.status for r in refused)),
        "answered_by": dict(Counter(r.source for r in held if r.status == 200)),
        "misses_latency_ms": report.pct([r.latency_ms for r in held if r.status == 200]),
        "misses_wall_s": round(wall, 2),
        "hits": len(hit_records),
        "hit_errors": len(hit_records) - len(ok_hits),
        # A hit whose exact lookup failed (Redis pool dry, a timeout, the breaker open: the cache
        # fails open) is answered as a miss ("bypass": no cache generation known).
        "hits_answered_by": dict(Counter(r.source for r in ok_hits)),
        # Why a hit went past the cache: its routing (cache strategy, intent, confidence).
        "bypassed_hits_routing": dict(
            Counter(f"{r.strategy}/{r.intent}/{r.confidence}" for r in ok_hits if r.source == "bypass")
        ),
        "exact_answered_hit_latency_ms": report.pct([r.latency_ms for r in ok_hits if r.source == "exact"]),
        "hit_latency_ms": report.pct([r.latency_ms for r in ok_hits]),
        "hit_p99_ms": report.pct([r.latency_ms for r in ok_hits])["p99"],
        # The gateway's own latency_ms of those hits (from authentication to the answer): the
        # rest of the client's latency is the wait to be read (the socket, the event loop).
        "hit_server_ms": report.pct([r.server_ms for r in ok_hits if r.server_ms is not None]),
        "rss_mb": {"before": round(rss_before / 2**20, 1), "peak": round(peak["rss"] / 2**20, 1)},
        "rss_kb_per_request_in_flight": round(grown / 1024 / len(misses_texts), 1),
        "cpu_cores": use.result,
    }


def held_in_flight(args, keys: dict, held: list[Call], pools: dict, folder: Path) -> tuple[dict, dict | None]:
    """The held-in-flight step on a gateway of its own, against the 5 s upstream; (figures, profile)."""
    with stack.upstream(seed=args.seed, log_dir=folder, fixed_ms=IN_FLIGHT_UPSTREAM_MS) as slow_url:
        with stack.gateway(upstream_url=slow_url, log_dir=folder, semantic_tier=True, workers=args.workers) as (
            base,
            master,
        ):
            pids = stack.worker_pids(master, args.workers)
            closed16(base, keys, pools["exact"], "exact", 200, pids)  # warm: connections, memo, row caches
            log(
                f"held in flight: {len(held)} misses on a {IN_FLIGHT_UPSTREAM_MS / 1000:.0f} s upstream, hits meanwhile"
            )
            spies = profiling.record(pids, 8, folder, "in-flight", gil=True) if args.profile else []
            flight = in_flight(base, keys, held, pools["exact"], pids)
            for spy in spies:
                spy.wait()
            files = [folder / f"pyspy-in-flight-gil-{pid}.txt" for pid in pids]
            profile = {"py_spy_gil": profiling.summarise(files)} if spies else None
            log(f"  refused {flight['refused']}, hits {flight['hit_latency_ms']}, rss {flight['rss_mb']}")
            log(f"  misses {flight['misses_latency_ms']}, answered by {flight['answered_by']}")
            log(f"  hits' server_ms {flight['hit_server_ms']}, answered by {flight['hits_answered_by']}")
            log(f"  those answered by the exact tier: {flight['exact_answered_hit_latency_ms']}")
    return flight, profile


def held_calls(keys: dict, workload, count: int) -> list[Call]:
    """``count`` questions never asked, spread over the tenants (the spare texts, numbered)."""
    spare = [(tenant, text) for tenant in keys for text in workload.tenants[tenant].warmup]
    return [Call(i, spare[i % len(spare)][0], "held", f"{spare[i % len(spare)][1]} (case {i})") for i in range(count)]


def sql_counts(key: str, pools: dict, workload, upstream_url: str) -> dict:
    """One request of each kind through Django in this process, counting its SQL statements."""
    os.environ.update({"OPENAI_API_KEY": "bench-key-not-a-secret", "OPENAI_BASE_URL": upstream_url})
    exact = next(c.text for c in pools["exact"] if c.tenant == "bank")
    semantic = next((c.text for c in pools["semantic"] if c.tenant == "bank"), None)
    queries = {"miss": workload.tenants["bank"].warmup[-1], "exact_hit": exact}
    if semantic:
        queries["semantic_hit"] = unseen_variant(semantic, 5)
    return profiling.sql_per_request(key, queries, warm=exact)


def peer_steps(args, workload, keys: dict, held: list[Call], folder: Path) -> dict:
    """The same steps against the LiteLLM proxy: exact cache, then semantic cache."""
    out: dict = {}
    tenants = list(keys)
    for mode in ("exact", "semantic"):
        name = f"litellm_{mode}"
        stack.redis_flush()
        result: dict = {}
        with stack.upstream(seed=args.seed, log_dir=folder) as upstream_url:
            with peer_litellm.proxy(mode=mode, upstream_url=upstream_url, log_dir=folder) as (base, master, key):
                pids = stack.process_tree(master)
                peer_keys = dict.fromkeys(tenants, key)
                log(f"{name}: priming at {base}")
                pools = prime(base, peer_keys, workload, args.topics, 3 if mode == "semantic" else 0, 16, "litellm")
                result["pools"] = {tier: len(pool) for tier, pool in pools.items()}
                result["misses_4_clients"] = misses(
                    base, peer_keys, miss_calls(keys, workload, 0), upstream_url, 4, pids, "litellm"
                )
                log(f"  miss overhead at 4 clients: {result['misses_4_clients']['overhead_ms']['client']}")
                for tier in ("exact", "semantic") if mode == "semantic" else ("exact",):
                    if pools[tier]:
                        result[f"{tier}_16_clients"] = closed = closed16(
                            base, peer_keys, pools[tier], tier, 2000, pids, "litellm"
                        )
                        log(f"  {tier} hits, 16 clients: {closed['achieved_rps']}/s, {closed['latency_ms']}")
        if mode == "exact":
            with stack.upstream(seed=args.seed, log_dir=folder, fixed_ms=IN_FLIGHT_UPSTREAM_MS) as slow_url:
                with peer_litellm.proxy(mode=mode, upstream_url=slow_url, log_dir=folder) as (base, master, key):
                    pids = stack.process_tree(master)
                    peer_keys = dict.fromkeys(tenants, key)
                    closed16(base, peer_keys, pools["exact"], "exact", 200, pids, "litellm")
                    log(f"{name}: held in flight")
                    result["in_flight"] = flight = in_flight(base, peer_keys, held, pools["exact"], pids, "litellm")
                    log(f"  refused {flight['refused']}, hits {flight['hit_latency_ms']}, rss {flight['rss_mb']}")
        out[name] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="offered hit rates per step (req/s)")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--topics", type=int, default=120, help="topics primed per tenant")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="py-spy the workers in the 16-client runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--whatif", default="", help="bench/whatif.py patches for the gateway (experiments)")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="misses held on the 5 s upstream")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the LiteLLM proxy's steps")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"the product's steps to run, of {','.join(STEPS)}")
    parser.add_argument("--ai", action="append", default=[], help="KEY=VALUE (JSON): an AI setting of the gateway")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--update-docs", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    steps = {step for step in args.steps.split(",") if step}
    if steps - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(steps - set(STEPS)))}")
    if args.update_docs and steps != set(STEPS):
        parser.error("--update-docs needs every step")
    ai = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.ai)}
    os.environ["BENCH_AI"] = json.dumps(ai)  # read by bench/gateway_settings.py in the gateway's workers
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
            results["gateway"] = {
                "server": f"gunicorn -c saascore/gunicorn_conf.py {stack.GATEWAY_APP} (uvicorn workers)",
                "workers": len(pids),
                "whatif": args.whatif or None,
                "ai_settings": ai,
            }
            results["steps"] = sorted(steps, key=STEPS.index)
            pools = prime(base, keys, workload, args.topics, probes=3, clients=16)
            results["pools"] = {tier: len(pool) for tier, pool in pools.items()}
            if "sql" in steps:
                results["sql_per_request"] = sql_counts(keys["bank"], pools, workload, upstream_url)
                counted = {k: v["statements"] for k, v in results["sql_per_request"].items()}
                log(f"SQL statements per request: {counted}")
            if "misses" in steps:
                results["misses_4_clients"] = misses(base, keys, miss_calls(keys, workload, 0), upstream_url, 4, pids)
                log(f"miss overhead at 4 clients: {results['misses_4_clients']['overhead_ms']}")
            rates = [float(r) for r in args.rates.split(",") if r]
            for tier in ("exact", "semantic") if "hits" in steps else ():
                log(f"{tier} hits: 16 closed-loop clients")
                results[f"{tier}_16_clients"] = closed = closed16(base, keys, pools[tier], tier, 2000, pids)
                log(f"  {closed['achieved_rps']}/s, {closed['latency_ms']}")
                if args.rates:
                    log(f"{tier} hits: open loop, rising rate")
                    results[f"{tier}_open_loop"] = saturate(
                        base, keys, pools[tier], tier, rates, args.step_seconds, pids
                    )
            if args.profile:
                log("profiles: py-spy on the workers, PostgreSQL wait events")
                results["profiles"] = {}
                for tier in ("exact", "semantic"):
                    make = stream_call(pools[tier], tier, 7)
                    calls = [make(i) for i in range(1500)]
                    results["profiles"][f"{tier}_16_clients"] = profiled(base, keys, calls, tier, 16, folder, pids)
                calls = miss_calls(keys, workload, 1)
                results["profiles"]["misses_4_clients"] = profiled(base, keys, calls, "miss", 4, folder, pids)
    held = held_calls(keys, workload, args.in_flight)
    if "in_flight" in steps:
        results["in_flight"], profile = held_in_flight(args, keys, held, pools, folder)
        if profile:
            results.setdefault("profiles", {})["in_flight"] = profile
    if args.peer:
        results["peer"] = peer_steps(args, workload, keys, held, folder)
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    text = json.dumps(results, indent=2, default=str)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"saturation-{run_id}.json").write_text(text + "\n")
    variant = "".join(f"-{part}" for part in (args.whatif, f"w{args.workers}" if args.workers != 2 else "") if part)
    (RESULTS / f"saturation{variant}-latest.json").write_text(text + "\n")
    if args.update_docs and not args.whatif and args.workers == 2:
        latest = latest_update(results)
        report.update_docs(stack.ROOT / "docs" / "benchmarks.md", summary(results), marker="e2e-saturation")
        if latest:
            table = comparison(latest)
            everything = {"configs": {**latest["configs"], **latest.get("peer", {})}}
            (RESULTS / "latest.md").write_text(report.markdown(everything) + "\n\n" + table + "\n")
            report.update_docs(stack.ROOT / "docs" / "benchmarks.md", table, marker="asgi-targets")
    print(text if args.json else summary(results))


def headline(sat: dict) -> dict:
    """The figures latest.json keeps of one server (the product or a peer configuration)."""
    out: dict = {}
    exact, semantic = sat.get("exact_16_clients"), sat.get("semantic_16_clients")
    out["saturation"] = {
        "exact_hits_per_s": exact and exact["achieved_rps"],
        "semantic_hits_per_s": semantic and semantic["achieved_rps"],
    }
    overhead = sat["misses_4_clients"]["overhead_ms"]["client"]
    out["miss_overhead_ms"] = {"p50": overhead["p50"], "p95": overhead["p95"]}
    flight = sat.get("in_flight")
    if flight:
        out["in_flight"] = {k: flight[k] for k in ("concurrent", "refused", "hit_p99_ms")}
        out["in_flight"]["rss_kb_per_request"] = flight["rss_kb_per_request_in_flight"]
    out["cpu_ms_per_exact_hit"] = exact and exact["cpu_ms_per_request"].get("gateway_workers")
    out["cpu_ms_per_request_by_kind"] = {
        "exact_hit": exact and exact["cpu_ms_per_request"],
        "semantic_hit": semantic and semantic["cpu_ms_per_request"],
        "miss": sat["misses_4_clients"]["cpu_ms_per_request"],
    }
    out["postgres_per_request_by_kind"] = {
        "exact_hit": exact and exact.get("postgres_per_request"),
        "semantic_hit": semantic and semantic.get("postgres_per_request"),
        "miss": sat["misses_4_clients"].get("postgres_per_request"),
    }
    return out


def latest_update(results: dict) -> dict | None:
    """Add the saturation figures to bench/results/latest.json (written by e2e_bench.py just before)."""
    path = RESULTS / "latest.json"
    if not path.exists():
        return None
    latest = json.loads(path.read_text())
    latest.update(headline(results))
    latest["sql_statements_per_request"] = {k: v["statements"] for k, v in results.get("sql_per_request", {}).items()}
    latest["saturation_run"] = {"date": results["date"], "command": results["command"]}
    for name, sat in results.get("peer", {}).items():
        peer = latest.setdefault("peer", {}).setdefault(name, {})
        if "client" in peer.get("miss_overhead_ms", {}):  # the mixed run's, as configs.full has it
            peer["miss_overhead_ms_mixed"] = peer.pop("miss_overhead_ms")
        peer.update(headline(sat))
    path.write_text(json.dumps(latest, indent=2, default=str) + "\n")
    return latest


def _ratio(ours, theirs) -> str:
    return "–" if not ours or not theirs else f"{ours / theirs:.2f}"


def _at(data: dict, path: str):
    """``data["a"]["b"]`` for ``"a.b"``, or None if any part is missing."""
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


# (figure, where in latest.json, target, which LiteLLM configuration it is compared with)
COMPARED = (
    ("exact hit p50 ms (mixed, 16 clients)", "configs.full.latency_ms.exact_hit.p50", "<= 4", "exact"),
    ("exact hit p99 ms (mixed)", "configs.full.latency_ms.exact_hit.p99", "<= 20", "exact"),
    ("semantic hit p50 ms (mixed)", "configs.full.latency_ms.semantic_hit.p50", "<= 12", "semantic"),
    ("semantic hit p99 ms (mixed)", "configs.full.latency_ms.semantic_hit.p99", "<= 40", "semantic"),
    ("exact hits/s (hits only, 16 clients)", "saturation.exact_hits_per_s", ">= 400", "exact"),
    ("semantic hits/s (hits only, 16 clients)", "saturation.semantic_hits_per_s", ">= 120", "semantic"),
    ("miss overhead p50 ms (4 clients)", "miss_overhead_ms.p50", "<= 5", "exact"),
    ("miss overhead p95 ms (4 clients)", "miss_overhead_ms.p95", "<= 15", "exact"),
    ("misses refused, held in flight", "in_flight.refused", "0", "exact"),
    ("hit p99 ms while they are held", "in_flight.hit_p99_ms", "<= 30", "exact"),
    ("memory per miss in flight, KiB", "in_flight.rss_kb_per_request", "–", "exact"),
    ("gateway CPU ms per exact hit", "cpu_ms_per_exact_hit", "<= 3", "exact"),
)


def comparison(latest: dict) -> str:
    """The targets, measured, and LiteLLM beside each figure (ratio = product / LiteLLM)."""
    lines = [
        "| figure | saascore | target | met | LiteLLM | saascore / LiteLLM |",
        "|---|---:|---|---|---:|---:|",
    ]
    for label, path, target, mode in COMPARED:
        ours = _at(latest, path)
        peer = latest.get("peer", {}).get(f"litellm_{mode}", {})
        theirs = _at(peer, path.removeprefix("configs.full."))
        met = "–" if ours is None or target == "–" else ("yes" if _meets(ours, target) else "no")
        peer_text = "–" if theirs is None else f"{theirs} ({mode})"
        lines.append(f"| {label} | {ours} | {target} | {met} | {peer_text} | {_ratio(ours, theirs)} |")
    return "\n".join(lines)


def _meets(value: float, target: str) -> bool:
    op, _, number = target.partition(" ")
    if not number:
        return value == float(op)
    return value <= float(number) if op == "<=" else value >= float(number)


def summary(results: dict) -> str:
    lines = [
        "| hits | 16 clients: req/s | p50 / p95 / p99 ms | connections per worker "
        "| CPU ms per request: gateway / PostgreSQL / Redis | highest rate with p99 <= 30 ms (open loop) |",
        "|---|---:|---|---|---|---:|",
    ]
    for tier in ("exact", "semantic"):
        c = results.get(f"{tier}_16_clients")
        if c is None:  # --steps without hits
            continue
        lat = c["latency_ms"]
        best = results.get(f"{tier}_open_loop", {}).get("max_rps_p99_under_30ms")
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
        for step in results.get(f"{tier}_open_loop", {}).get("steps", []):
            lat, cores = step["latency_ms"], step["cpu_cores"]
            lines.append(
                f"| {tier} | {step['offered_rps']:.0f} | {step['achieved_rps']:.0f} | {lat['p50']} / {lat['p99']} | "
                f"{cores['machine_busy_cores']} / {cores['gateway_workers_cores']} |"
            )
    m = results.get("misses_4_clients", {}).get("overhead_ms")
    if m is not None:  # not with --steps without misses
        lines.append(
            f"\nMiss overhead at 4 clients ({m['client']['n']} misses): client - upstream sleep p50 "
            f"{m['client']['p50']} / p95 {m['client']['p95']} ms; the gateway's own latency_ms - sleep p50 "
            f"{m['gateway']['p50']} / p95 {m['gateway']['p95']} ms."
        )
    flight = results.get("in_flight")
    if flight is not None:
        hits, held = flight["hit_latency_ms"], flight["misses_latency_ms"]
        lines.append(
            f"Held in flight ({flight['concurrent']} misses, {flight['refused']} refused): hits meanwhile "
            f"p50 {hits['p50']} / p99 {hits['p99']} ms (n={hits['n']}); the misses p50 {held['p50']} / "
            f"p99 {held['p99']} ms."
        )
    sql = results.get("sql_per_request", {})
    if sql:
        answered = ", ".join(f"{v['answered_by']} {v['statements']}" for v in sql.values())
        lines.append(f"SQL statements per request, by what answered it: {answered}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
