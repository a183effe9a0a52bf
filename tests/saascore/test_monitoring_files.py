"""deploy/: the Grafana dashboard and the Prometheus alerts only name series the app exports,
and every dashboard query is valid PromQL (promtool parses it)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY

import saascore.metrics  # noqa: F401  (registers the product's series)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERIES = re.compile(r"\b(?:saascore|django)_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
# Grafana's variables, as Prometheus would see them after Grafana substitutes them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$tenant": ".*"}

REQUIRED_PANELS = {
    "Cache hit ratio by tier",
    "Cache lookup latency p50 / p99",
    "Router confidence (median, p10)",
    "Routing decisions by model and intent",
    "LLM tokens by model and direction",
    "Cost and savings (USD per hour)",
    "Query latency by source p50 / p99",
    "Upstream errors by model",
    "HTTP error rate (5xx share)",
    "Cache circuit breaker",
}


def exported_series() -> set[str]:
    """The sample names /metrics can show for the product's and django-prometheus's families."""
    Metrics.get_instance()  # django-prometheus's HTTP series, registered when its middleware starts
    names = set()
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ()):
            names.add(family.name + suffix)
    return {name for name in names if name.startswith(("saascore_", "django_"))}


def dashboard_panels() -> list[dict]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_has_the_panels_and_a_datasource_variable():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels()
    assert REQUIRED_PANELS <= {panel["title"] for panel in panels}
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_dashboard_and_alert_expression_names_exported_series():
    known = exported_series()
    assert {"saascore_cache_requests_total", "saascore_query_seconds_bucket"} <= known
    assert "django_http_responses_total_by_status_total" in known
    for expr in dashboard_exprs() + alert_exprs():
        named = set(SERIES.findall(expr))
        assert named, f"no series in {expr!r}"
        assert named <= known, f"unknown series {named - known} in {expr!r}"


def test_every_dashboard_expression_is_valid_promql(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed: apt-get install prometheus (make test does)"
    rules = []
    for n, expr in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:panel_{n}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
