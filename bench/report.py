"""Figures of one configuration's run, from the client's records, the upstream's call
log and the billing ledger; the Markdown table and the latency chart of a whole run."""

import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
from loadgen import Record
from workload import Workload, normalise

HIT_TIERS = ("exact", "semantic")
SOURCES = {"exact_hit": "exact", "semantic_hit": "semantic", "miss": "miss"}


def pct(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    array = np.asarray(values, dtype=float)
    figures = {f"p{q}": round(float(np.percentile(array, q)), 2) for q in (50, 95, 99)}
    return {**figures, "n": len(values)}


def ledger_rows(tenants: dict, request_ids: list[str]) -> dict[str, dict]:
    """The billing ledger's rows (billing.UsageRecord) of these requests, by request id."""
    from billing.models import UsageRecord
    from tenants.scoping import tenant_scope

    rows: dict[str, dict] = {}
    fields = ("request_id", "source", "model", "cost", "saved", "cached_question", "embedding_model")
    for tenant in tenants.values():
        with tenant_scope(tenant):
            query = UsageRecord.objects.for_tenant(tenant).filter(request_id__in=request_ids).values(*fields)
            rows.update({row["request_id"]: row for row in query})
    return rows


def _kind_of_source(record: Record, ledger: dict[str, dict]) -> str:
    """exact hits served by waiting for another request's answer (single flight) are told apart."""
    if record.source == "exact" and ledger.get(record.request_id, {}).get("embedding_model"):
        return "exact_waited"
    return "miss" if record.source == "bypass" else record.source


def config_stats(
    records: list[Record], wall: float, texts: dict[int, str], workload: Workload, ledger: dict, calls: dict
) -> dict:
    ok = [r for r in records if r.status == 200]
    source = {r.index: _kind_of_source(r, ledger) for r in ok}
    latency = {name: pct([r.latency_ms for r in ok if source[r.index] == s]) for name, s in SOURCES.items()}
    latency["exact_hit_waited"] = pct([r.latency_ms for r in ok if source[r.index] == "exact_waited"])
    latency["all"] = pct([r.latency_ms for r in ok])
    server = {
        name: pct([r.server_ms for r in ok if source[r.index] == s and r.server_ms is not None])
        for name, s in SOURCES.items()
    }
    hits = [r for r in ok if r.source in HIT_TIERS]
    false_hits = wrong_hits = 0
    for r in hits:
        row = ledger.get(r.request_id)
        if row is None:
            continue
        asked, cached = normalise(texts[r.index]), normalise(row["cached_question"])
        false_hits += r.tenant == "forum" and cached in workload.near_miss_of.get(asked, ())
        topics = workload.topic_of[r.tenant]
        wrong_hits += topics.get(cached) != topics.get(asked)
    overhead_client, overhead_server = [], []
    for r in ok:
        call = calls.get(r.ref) if r.ref else None
        if call:
            overhead_client.append(r.latency_ms - call["sleep_ms"])
            if r.server_ms is not None:  # the peer does not report its own latency
                overhead_server.append(r.server_ms - call["sleep_ms"])
    rows = [ledger[r.request_id] for r in ok if r.request_id in ledger]
    by_kind: dict[str, Counter] = {}
    for r in ok:
        by_kind.setdefault(r.kind, Counter())[source[r.index].replace("exact_waited", "exact")] += 1
    n = len(ok)
    return {
        "requests": len(records),
        "errors": len(records) - n,
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(records) / wall, 2),
        "latency_ms": latency,
        "server_latency_ms": server,
        "hit_ratio": {tier: round(sum(r.source == tier for r in ok) / n, 4) if n else 0.0 for tier in HIT_TIERS},
        "hits": len(hits),
        "false_hits": false_hits,
        "false_hit_rate": round(false_hits / len(hits), 4) if hits else None,
        "wrong_hits": wrong_hits,
        "wrong_hit_rate": round(wrong_hits / len(hits), 4) if hits else None,
        "cost_usd": f"{sum((row['cost'] for row in rows), Decimal(0)):f}",
        "saved_usd": f"{sum((row['saved'] for row in rows), Decimal(0)):f}",
        "ledger_rows": len(rows),
        "ledger_sources": dict(Counter(row["source"] for row in rows)),
        "upstream_calls": sum(1 for r in ok if r.ref),
        "miss_overhead_ms": {"client": pct(overhead_client), "gateway": pct(overhead_server)},
        "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
        "by_tenant": {
            t: {tier: sum(r.source == tier for r in ok if r.tenant == t) for tier in (*HIT_TIERS, "miss", "bypass")}
            for t in workload.tenants
        },
        "routing_of_misses": dict(Counter(f"{r.intent}/{r.strategy}" for r in ok if r.source in ("miss", "bypass"))),
        "stored": dict(Counter(re.sub(r":.*", "", r.stored) or "-" for r in ok if r.source == "miss")),
        "models": dict(Counter(r.model for r in ok if r.source in ("miss", "bypass"))),
    }


def ratios(configs: dict, baseline: str = "no_cache") -> None:
    """Each configuration against the no-cache run (in place)."""
    base = configs.get(baseline)
    if not base:
        return
    for stats in configs.values():
        cost0 = Decimal(base["cost_usd"])
        cost = stats["cost_usd"]
        stats["vs_no_cache"] = {
            "cost": round(float(Decimal(cost) / cost0), 4) if cost0 and cost is not None else None,
            "throughput": round(stats["throughput_rps"] / base["throughput_rps"], 3),
            "latency_p50": _ratio(stats["latency_ms"]["all"]["p50"], base["latency_ms"]["all"]["p50"]),
            "latency_p95": _ratio(stats["latency_ms"]["all"]["p95"], base["latency_ms"]["all"]["p95"]),
            "upstream_calls": _ratio(stats["upstream_calls"], base["upstream_calls"]),
        }


def _ratio(value, base) -> float | None:
    return round(value / base, 4) if value is not None and base else None


def _cost(value: str | None) -> str:
    return "–" if value is None else f"{Decimal(value):.4f}"


def _f(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    configs = results["configs"]
    lines = [
        "| configuration | exact hit p50 / p95 / p99 ms | semantic hit p50 / p95 / p99 ms | miss p50 / p95 / p99 ms "
        "| throughput req/s | hit ratio exact / semantic | false hits (wrong) | cost USD | cost vs no cache |",
        "|---|---|---|---|---:|---|---|---:|---:|",
    ]
    for name, c in configs.items():
        cells = []
        for source in ("exact_hit", "semantic_hit", "miss"):
            figures = c["latency_ms"][source]
            cells.append(" / ".join(_f(figures[p]) for p in ("p50", "p95", "p99")) + f" (n={figures['n']:,})")
        false = "–" if c["false_hit_rate"] is None else f"{c['false_hits']} ({c['wrong_hits']}) of {c['hits']:,}"
        ratio = c.get("vs_no_cache", {}).get("cost")
        lines.append(
            f"| {name} | {' | '.join(cells)} | {c['throughput_rps']:.1f} | "
            f"{c['hit_ratio']['exact']:.3f} / {c['hit_ratio']['semantic']:.3f} | {false} | "
            f"{_cost(c['cost_usd'])} | {_f(ratio, 3)} |"
        )
    return "\n".join(lines)


COLOURS = {
    "no_cache": "tab:grey",
    "exact_only": "tab:orange",
    "full": "tab:blue",
    "litellm_exact": "tab:red",
    "litellm_semantic": "tab:purple",
}


def chart(records: dict[str, list[Record]], path: Path, title: str) -> None:
    """Latency ECDFs: every request per configuration (left), cache hits by tier (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for name, rows in records.items():
        colour = COLOURS.get(name)
        _ecdf(left, [r.latency_ms for r in rows if r.status == 200], name, colour)
        for tier in HIT_TIERS:
            values = [r.latency_ms for r in rows if r.status == 200 and r.source == tier]
            if values:
                style = "-" if tier == "semantic" else "--"
                _ecdf(right, values, f"{name}: {tier} hits", colour, linestyle=style)
    for axis, label in ((left, "all requests"), (right, "cache hits (targets: p50 4 / 12 ms, p99 20 / 40 ms)")):
        axis.set_xscale("log")
        axis.set_xlabel("latency seen by the client (ms, log scale)")
        axis.set_ylabel("share of requests at or under")
        axis.set_title(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    for target in (4, 12, 20, 40):
        right.axvline(target, color="black", linewidth=0.8, linestyle=":")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _ecdf(axis, values: list[float], label: str, colour: str | None, linestyle: str = "-") -> None:
    data = np.sort(np.asarray(values))
    steps = np.arange(1, len(data) + 1) / len(data)
    axis.plot(data, steps, label=f"{label} (n={len(data):,})", color=colour, linestyle=linestyle)


def update_docs(path: Path, block: str, marker: str = "e2e-bench") -> None:
    """Replace one generated block of the "End-to-end load (issue 8)" section; nothing else."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text()
    if begin not in text:
        if "## End-to-end load (issue 8)" not in text:
            text = text.rstrip("\n") + "\n\n## End-to-end load (issue 8)\n"
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{block.strip()}\n{end}{tail}")
