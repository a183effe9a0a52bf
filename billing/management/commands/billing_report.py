import calendar
import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import roi_report, usage_series
from tenants.commands import tenant_from_slug


class Command(BaseCommand):
    help = "A tenant's month: actual cost against the naive baseline (every request on AI['BASELINE_MODEL'], no cache)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--month", required=True, help="YYYY-MM (UTC)")
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--by", choices=["key", "user", "tag"], help="spend grouped by API key, end user or tag instead"
        )

    def handle(self, *args, tenant: str, month: str, json: bool, by: str | None = None, **options):
        tenant_obj = tenant_from_slug(tenant)
        try:
            year, number = (int(part) for part in month.split("-"))
            start = date(year, number, 1)
        except ValueError:
            raise CommandError(f"--month must be YYYY-MM, not {month!r}") from None
        end = date(year, number, calendar.monthrange(year, number)[1])
        if by:
            series = usage_series(tenant=tenant_obj, start=start, end=end, group_by=by)
            self.stdout.write(_json(series) if json else render_groups(series, by, tenant_obj.slug, month))
            return
        report = roi_report(tenant=tenant_obj, start=start, end=end)
        if json:
            self.stdout.write(_json(report))
        else:
            self.stdout.write(render(report))


def _json(report: dict) -> str:
    return json.dumps(report, default=str, indent=2)


def _money(value) -> str:
    return f"${value:,.6f}"


def render(r: dict) -> str:
    queries = r["queries"] or 1
    mix = ", ".join(f"{n / max(r['llm_calls'], 1):.0%} {model}" for model, n in r["model_mix"].items()) or "-"
    rows = [
        ("Queries", f"{r['queries']:,}", f"{r['queries']:,}"),
        (
            "Served from cache",
            "0",
            f"{r['cache_hits']:,} ({r['cache_hits'] / queries:.1%}: {r['hits_exact']:,} exact, "
            f"{r['hits_semantic']:,} semantic)",
        ),
        ("LLM calls", f"{r['queries']:,}", f"{r['llm_calls']:,}"),
        ("Model mix", f"100% {r['baseline_model']}", mix),
        ("Tokens", f"{r['baseline_tokens']:,}", f"{r['actual_tokens']:,}"),
        ("Cost", _money(r["baseline_cost"]), _money(r["actual_cost"])),
        ("Savings", "", f"{_money(r['savings'])} ({r['savings_ratio']:.1%} of baseline)"),
        ("  of which cache hits", "", _money(r["cache_saved"])),
    ]
    width = max(len(row[1]) for row in rows) + 2
    lines = [
        f"Tenant {r['tenant']}, {r['from']} to {r['to']} (UTC)",
        f"{'':22}{'Baseline (naive RAG)':<{max(width, 22)}}Actual (cache + routing)",
    ]
    lines += [f"{label:22}{baseline:<{max(width, 22)}}{actual}" for label, baseline, actual in rows]
    return "\n".join(lines)


def render_groups(series: list[dict], by: str, tenant: str, month: str) -> str:
    lines = [f"Tenant {tenant}, {month} (UTC), by {by}", f"{by:40}{'requests':>10}{'tokens':>12}  cost"]
    for row in sorted(series, key=lambda r: -r["cost"]):
        name = row.get("label") or row["key"] or "(none)"
        if by == "key" and row["key"] is not None:
            name = f"{name} (#{row['key']})"
        tokens = row["input_tokens"] + row["output_tokens"]
        lines.append(f"{str(name)[:39]:40}{row['requests']:>10,}{tokens:>12,}  {_money(row['cost'])}")
    return "\n".join(lines)
