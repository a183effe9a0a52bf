"""End-to-end load (issue 8): latency, throughput, hit ratio, false hits and cost of
three configurations over one seeded workload, in one run.

    python bench/e2e_bench.py [--requests 3000] [--clients 16] [--seed 8] [--json] [--update-docs]

The real app as production serves it (``gunicorn -c saascore/gunicorn_conf.py
saascore.asgi:application``: 2 uvicorn workers, one event loop each) on its own
embedded PostgreSQL + Redis under var/bench, asking a local OpenAI-compatible
upstream (bench/fake_upstream.py: log-normal latency, median 800 ms).
Configurations, each on fresh tenants, an emptied Redis, a restarted server and a
reset upstream:

    no_cache          TenantAISettings.cache_enabled = False: every query goes to the routed model
    exact_only        AI["SEMANTIC_TIER"] = False: the exact-match tier only
    full              the product as shipped: exact, then semantic tier
    litellm_exact     the peer, LiteLLM's proxy with its Redis exact cache (bench/peer_litellm.py)
    litellm_semantic  the peer with its redis-semantic cache, same embedder

Writes bench/results/<timestamp>.json, bench/results/latest.json, the Markdown
table (latest.md) and the latency chart (docs/img/e2e-latency.png);
--update-docs puts the table into docs/benchmarks.md. Progress goes to stderr.
"""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from stack import use_bench_services

use_bench_services()

import _setup  # noqa: E402  (Django set up on the bench's services)
import peer_litellm  # noqa: E402
import report  # noqa: E402
import stack  # noqa: E402
from loadgen import Call, CpuMeter, Record, closed_loop  # noqa: E402
from workload import Params, Workload, build_workload  # noqa: E402

logging.getLogger().setLevel(logging.WARNING)  # this process's own Django logs; the gateway keeps its level

ROOT = stack.ROOT
RESULTS = ROOT / "bench" / "results"
CHART = ROOT / "docs" / "img" / "e2e-latency.png"
DOCS = ROOT / "docs" / "benchmarks.md"

CONFIGS = {
    "no_cache": {"settings": {"cache_enabled": False}, "semantic_tier": True},
    "exact_only": {"settings": {}, "semantic_tier": False},
    "full": {"settings": {}, "semantic_tier": True},
    "litellm_exact": {"peer": "exact"},
    "litellm_semantic": {"peer": "semantic"},
}


def log(message: str) -> None:
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    modified = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "modified_files": modified}


def progress_printer(name: str, total: int, started: float, workers: list[int], port: int, connections: list):
    """Progress every 10%; also how the clients' connections are spread over the workers
    (each worker serves the connections the kernel gave it)."""
    step = max(1, total // 10)

    def show(done: int, records: list[Record]) -> None:
        if done % step and done != total:
            return
        connections.append(stack.connections_per_worker(workers, port))
        hits = sum(r.source in report.HIT_TIERS for r in records)
        rate = done / (time.perf_counter() - started)
        log(f"  {name}: {done}/{total} requests, {rate:.1f} req/s, {hits / done:.0%} cache hits")

    return show


def setup_tenants(workload: Workload, run_id: str, name: str, settings: dict) -> tuple[dict, dict]:
    tenants, keys = {}, {}
    for tenant_name, data in workload.tenants.items():
        tenant, key = stack.tenant_setup(
            slug=f"bench-{run_id.lower()}-{name.replace('_', '-')}-{tenant_name}",
            name=f"Bench {name} {tenant_name}",
            documents=data.documents,
            examples=data.router_examples,
            settings=settings,
        )
        tenants[tenant_name], keys[tenant_name] = tenant, key
    return tenants, keys


def warm_up(base: str, keys: dict, workload: Workload, clients: int, api: str = "saascore") -> None:
    """Load the model, router examples and connections in every worker (cache bypassed, not measured)."""
    calls = [Call(-1, tenant, "warmup", text) for tenant, data in workload.tenants.items() for text in data.warmup[:16]]
    records, _ = asyncio.run(closed_loop(base, keys, calls, clients=clients, cache="bypass", api=api))
    failed = [r for r in records if r.status != 200]
    if failed:
        raise RuntimeError(f"warm-up: {len(failed)} of {len(records)} requests failed (status {failed[0].status})")


def measured(name: str, base: str, keys: dict, calls: list[Call], pids: list[int], clients: int, api: str) -> dict:
    """The workload from ``clients`` closed-loop clients, with the CPU of the server's ``pids`` and
    the bench's PostgreSQL and Redis; how the clients' connections spread over the processes."""
    load_before = os.getloadavg()[0]
    log(f"{name}: {len(calls)} requests from {clients} clients")
    started = time.perf_counter()
    connections: list = []
    with CpuMeter() as cpu, stack.CpuUse(pids) as use:
        port = int(base.rsplit(":", 1)[1])
        show = progress_printer(name, len(calls), started, pids, port, connections)
        records, wall = asyncio.run(closed_loop(base, keys, calls, clients=clients, progress=show, api=api))
    return {
        "records": records,
        "wall": wall,
        "figures": {
            "loadgen_cpu_share": round(cpu.share, 3),
            "cpu_cores": use.result,
            "client_connections_per_worker": connections,
            "cpu_ms_per_request": {
                k.removesuffix("_cores"): round(v * 1000 * wall / len(records), 2)
                for k, v in use.result.items()
                if k != "machine_busy_cores"
            },
            "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        },
    }


def run_peer(name: str, mode: str, workload: Workload, args, upstream_url: str, log_dir: Path):
    """The same requests through the LiteLLM proxy (the product's tenants are its cache namespaces)."""
    stack.redis_flush()
    calls = [Call(r.index, r.tenant, r.kind, r.text) for r in workload.requests]
    with peer_litellm.proxy(mode=mode, upstream_url=upstream_url, log_dir=log_dir) as (base, master, key):
        keys = dict.fromkeys(workload.tenants, key)
        log(f"{name}: LiteLLM at {base}, warming up")
        warm_up(base, keys, workload, args.clients, api="litellm")
        stack.upstream_reset(upstream_url)
        run = measured(name, base, keys, calls, stack.process_tree(master), args.clients, "litellm")
    texts = {r.index: r.text for r in workload.requests}
    ledger = peer_litellm.classify(run["records"], texts, mode)
    stats = finish(name, run, workload, ledger, upstream_url, log_dir)
    for field in ("cost_usd", "saved_usd", "ledger_rows", "ledger_sources"):
        stats[field] = None  # the proxy keeps no ledger without its database
    stats["settings"] = peer_litellm.config(mode=mode, upstream_url="(fake upstream)", redis_socket=Path("(bench)"))
    stats["settings"]["model_list"] = "chat + embeddings on the fake upstream"
    return stats, run["records"]


def finish(name: str, run: dict, workload: Workload, ledger: dict, upstream_url: str, log_dir: Path) -> dict:
    records = run["records"]
    with (log_dir / f"records-{name}.jsonl").open("w") as out:  # every request, for a closer look
        out.writelines(json.dumps(record.__dict__) + "\n" for record in records)
    texts = {r.index: r.text for r in workload.requests}
    stats = report.config_stats(records, run["wall"], texts, workload, ledger, stack.upstream_calls(upstream_url))
    return {**stats, **run["figures"]}


def run_config(name: str, config: dict, workload: Workload, args, run_id: str, upstream_url: str, log_dir: Path):
    if "peer" in config:
        return run_peer(name, config["peer"], workload, args, upstream_url, log_dir)
    log(f"{name}: tenants, documents and router examples")
    stack.redis_flush()
    tenants, keys = setup_tenants(workload, run_id, name, config["settings"])
    calls = [Call(r.index, r.tenant, r.kind, r.text) for r in workload.requests]
    with stack.gateway(
        upstream_url=upstream_url,
        log_dir=log_dir,
        semantic_tier=config["semantic_tier"],
        workers=args.workers,
        whatif=args.whatif,
    ) as (base, master):
        log(f"{name}: gunicorn at {base}, warming up")
        warm_up(base, keys, workload, args.clients)
        stack.upstream_reset(upstream_url)
        run = measured(name, base, keys, calls, stack.worker_pids(master, args.workers), args.clients, "saascore")
    ledger = report.ledger_rows(tenants, [r.request_id for r in run["records"] if r.request_id])
    stats = finish(name, run, workload, ledger, upstream_url, log_dir)
    stats["settings"] = {**config["settings"], "AI.SEMANTIC_TIER": config["semantic_tier"]}
    return stats, run["records"]


def targets(results: dict) -> dict:
    """The issue's targets (reported, not asserted), from the full configuration."""
    configs = results["configs"]
    full, exact_only = configs.get("full"), configs.get("exact_only")
    if not full:
        return {}
    n = full["requests"] - full["errors"]
    exact_hits, semantic_hits = (round(full["hit_ratio"][t] * n) for t in ("exact", "semantic"))
    exact_only_hits = exact_only["hits"] if exact_only else None
    measured = {
        "semantic_hit_p50_ms": (full["latency_ms"]["semantic_hit"]["p50"], "<=", 12),
        "semantic_hit_p99_ms": (full["latency_ms"]["semantic_hit"]["p99"], "<=", 40),
        "exact_hit_p50_ms": (full["latency_ms"]["exact_hit"]["p50"], "<=", 4),
        "exact_hit_p99_ms": (full["latency_ms"]["exact_hit"]["p99"], "<=", 20),
        "miss_gateway_overhead_p95_ms": (full["miss_overhead_ms"]["client"]["p95"], "<=", 15),
        "semantic_hits_per_exact_hit": (round(semantic_hits / exact_hits, 3) if exact_hits else None, ">=", 3.2),
        "hits_vs_exact_only_hits": (
            round(full["hits"] / exact_only_hits, 3) if exact_only_hits else None,
            ">=",
            3.2,
        ),
        "false_hit_rate": (full["false_hit_rate"], "<=", 0.01),
        "cost_vs_no_cache": (full.get("vs_no_cache", {}).get("cost"), "<=", 0.30),
    }
    out = {}
    for key, (value, op, target) in measured.items():
        met = None if value is None else (value <= target if op == "<=" else value >= target)
        out[key] = {"measured": value, "target": f"{op} {target}", "met": met}
    return out


def summary(results: dict) -> str:
    lines = [report.markdown(results), ""]
    for key, t in results["targets"].items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"{key:32} {t['measured']!s:>10}  target {t['target']:>8}  {mark}")
    workload = results["workload"]
    lines.append(f"\nworkload {workload['fingerprint']}: {workload['kinds']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per configuration")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (closed loop)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--whatif", default="", help="bench/whatif.py patches for the gateway (experiments)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset, in this order")
    parser.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    parser.add_argument("--update-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()

    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = stack.BENCH_VAR / "logs" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    workload = build_workload(Params(seed=args.seed, requests=args.requests))
    log(f"workload {workload.fingerprint()}: {dict(workload.kinds())}")
    log(f"services under {stack.BENCH_VAR}: {stack.services_up()}")
    results: dict = {
        "machine": {**_setup.machine(), "load_average_at_start": os.getloadavg()},
        "date": started.isoformat(timespec="seconds"),
        "command": "python bench/e2e_bench.py " + " ".join(sys.argv[1:]),
        "git": git_state(),
        "gateway": {
            "server": f"gunicorn -c saascore/gunicorn_conf.py {stack.GATEWAY_APP} (uvicorn workers)",
            "workers": args.workers,
            "clients": args.clients,
            "whatif": args.whatif,
        },
        "upstream": {"latency": "log-normal, median 800 ms, sigma 0.6, cap 20 s", "output_tokens": "median 180"},
        "workload": workload.summary(),
        "configs": {},
    }
    all_records: dict[str, list[Record]] = {}
    with stack.upstream(seed=args.seed, log_dir=log_dir) as upstream_url:
        for name in args.configs.split(","):
            stats, records = run_config(name, CONFIGS[name], workload, args, run_id, upstream_url, log_dir)
            results["configs"][name] = stats
            all_records[name] = records
            lat = stats["latency_ms"]
            log(
                f"{name}: {stats['throughput_rps']} req/s, hits exact {stats['hit_ratio']['exact']:.1%} "
                f"semantic {stats['hit_ratio']['semantic']:.1%}, p50 all {lat['all']['p50']} ms, "
                f"cost ${str(stats['cost_usd'])[:8]}"
            )
    report.ratios(results["configs"])
    for name in [n for n in results["configs"] if "peer" in CONFIGS[n]]:  # latest.json's configs: the product's
        results.setdefault("peer", {})[name] = results["configs"].pop(name)
    for stats in results.get("peer", {}).values():
        stats.pop("vs_no_cache", None)
    results["targets"] = targets(results)
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=str)
    (RESULTS / f"{run_id}.json").write_text(text + "\n")
    # Only a run of the three configurations with the product's server settings is "latest".
    official = list(results["configs"]) + list(results.get("peer", {})) == list(CONFIGS) and (
        args.workers,
        args.whatif,
    ) == (2, "")
    written = [RESULTS / f"{run_id}.json"]
    if official:
        (RESULTS / "latest.json").write_text(text + "\n")
        title = f"saascore end-to-end load, {args.clients} clients, {args.requests:,} requests per configuration"
        report.chart(all_records, CHART, f"{title} ({run_id})")
        table = report.markdown({"configs": {**results["configs"], **results.get("peer", {})}})
        (RESULTS / "latest.md").write_text(table + "\n")
        written += [RESULTS / "latest.json", CHART]
        if args.update_docs:
            report.update_docs(DOCS, table)
    log(f"done in {results['duration_s']:.0f} s: {', '.join(map(str, written))}")
    print(text if args.json else summary(results))


if __name__ == "__main__":
    main()
