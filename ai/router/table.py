"""The route table: (intent, complexity) -> model and fallbacks; a tenant's rule beats the global one."""

from ai.router.models import RouteRule
from saascore.conf import ai_settings
from saascore.ttl import TTLCache
from tenants.models import Tenant
from tenants.scoping import tenant_scope

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


def _load(tenant: Tenant) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    table: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    with tenant_scope(tenant):
        rules = list(RouteRule.objects.visible_to(tenant))
    for rule in sorted(rules, key=lambda r: r.tenant_id is not None):  # global first, tenant overrides
        table[(rule.intent, rule.complexity)] = (rule.model, tuple(rule.fallbacks))
    return table


_tables = TTLCache("route-tables", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(RouteRule)


def route_for(tenant: Tenant, intent: str, complexity: str) -> tuple[str, tuple[str, ...]]:
    return _tables.get(tenant.pk, lambda: _load(tenant)).get((intent, complexity), DEFAULT_ROUTE)


def forget_route_tables() -> None:
    _tables.clear()


RouteTable = dict[tuple[str, str], tuple[str, tuple[str, ...]]]


async def aroute_table(tenant: Tenant) -> RouteTable:
    """The tenant's route table (global rules with its own over them), from the row cache."""
    return await _tables.aget(tenant.pk, lambda: _load(tenant))


def table_models(table: RouteTable) -> list[str]:
    """Every model a route of ``table`` may answer with (its model or a fallback), in table order:
    what a tenant may name on the OpenAI-compatible API (docs/decisions.md)."""
    names = [name for model, fallbacks in table.values() for name in (model, *fallbacks)]
    return list(dict.fromkeys(names))


def model_route(table: RouteTable, model: str) -> tuple[str, tuple[str, ...]] | None:
    """The route of a model the caller named: the first rule that routes to it, with that rule's
    fallbacks; a model that is only ever a fallback has none. None: no route of the tenant uses it."""
    for routed, fallbacks in table.values():
        if routed == model:
            return routed, fallbacks
    return (model, ()) if model in table_models(table) else None
