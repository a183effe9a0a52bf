"""The route table: (intent, complexity) -> model and fallbacks; a tenant's rule beats the global one."""

import threading
import time

from ai.router.models import RouteRule
from tenants.models import Tenant
from tenants.scoping import tenant_scope

REFRESH_SECONDS = 5.0
# Used when neither the tenant nor the global table has the cell.
DEFAULT_ROUTE = ("gpt-4o-mini", ("local-extractive",))

# (intent, complexity) -> model, fallbacks. Cheap models for simple work, gpt-4o
# where reasoning pays; out-of-scope queries cost nothing.
SEED_RULES = [
    ("retrieval", "low", "gpt-4o-mini", ["claude-3-haiku"]),
    ("retrieval", "medium", "gpt-4o-mini", ["claude-3-haiku"]),
    ("retrieval", "high", "gpt-4o", ["gpt-4o-mini"]),
    ("chat", "low", "gpt-4o-mini", ["claude-3-haiku"]),
    ("chat", "medium", "gpt-4o-mini", ["claude-3-haiku"]),
    ("chat", "high", "gpt-4o", ["gpt-4o-mini"]),
    ("analysis", "low", "gpt-4o-mini", ["claude-3-haiku"]),
    ("analysis", "medium", "gpt-4o", ["gpt-4o-mini"]),
    ("analysis", "high", "gpt-4o", ["claude-3-haiku"]),
    ("error", "low", "local-extractive", []),
    ("error", "medium", "local-extractive", []),
    ("error", "high", "local-extractive", []),
]


def route_rules_seed(model=None, using: str | None = None) -> None:
    """Create the missing global rules (idempotent). Global rows: call it inside
    ``unscoped_scope()``, or from a migration inside ``tenants.rls.owner_writes``."""
    if model is None:
        model = RouteRule
    for intent, complexity, name, fallbacks in SEED_RULES:
        model.objects.using(using).get_or_create(
            tenant=None, intent=intent, complexity=complexity, defaults={"model": name, "fallbacks": fallbacks}
        )


_tables: dict[int, tuple[float, dict]] = {}
_lock = threading.Lock()


def _load(tenant: Tenant) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    table: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    with tenant_scope(tenant):
        rules = list(RouteRule.objects.visible_to(tenant).order_by("tenant_id"))  # NULLs (global) last
    for rule in sorted(rules, key=lambda r: r.tenant_id is not None):  # global first, tenant overrides
        table[(rule.intent, rule.complexity)] = (rule.model, tuple(rule.fallbacks))
    return table


def route_for(tenant: Tenant, intent: str, complexity: str) -> tuple[str, tuple[str, ...]]:
    now = time.monotonic()
    cached = _tables.get(tenant.pk)
    if cached is None or now - cached[0] > REFRESH_SECONDS:
        cached = (now, _load(tenant))
        with _lock:
            _tables[tenant.pk] = cached
    return cached[1].get((intent, complexity), DEFAULT_ROUTE)


def forget_route_tables() -> None:
    with _lock:
        _tables.clear()
