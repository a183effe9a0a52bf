"""Router examples to and from JSON lines: {text, intent, complexity, cache_strategy, note}."""

import json
from collections.abc import Iterable
from pathlib import Path

from django.core.exceptions import ValidationError

from ai.embeddings import Embedder, get_embedder
from ai.router.examples import router_example_save
from ai.router.models import RouterExample, text_hash
from tenants.models import Tenant
from tenants.scoping import tenant_scope, unscoped_scope

STARTER_EXAMPLES = Path(__file__).with_name("starter_examples.jsonl")
FIELDS = ("text", "intent", "complexity", "cache_strategy", "note")


def parse_lines(lines: Iterable[str]) -> list[dict]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValidationError(f"line {number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "intent" not in row:
            raise ValidationError(f"line {number}: needs at least 'text' and 'intent'")
        rows.append({key: row[key] for key in FIELDS if key in row})
    return rows


def router_examples_import(
    *, rows: list[dict], tenant: Tenant | None, embedder: Embedder | None = None
) -> tuple[int, int]:
    """Create or update examples by text (per tenant, or global). Returns (created, updated)."""
    embedder = embedder or get_embedder()
    created = updated = 0
    scope = tenant_scope(tenant) if tenant else unscoped_scope()
    with scope:
        manager = RouterExample.objects.for_tenant(tenant) if tenant else RouterExample.objects.global_rows()
        existing = {e.text_hash: e for e in manager}
    for row in rows:
        example = existing.get(text_hash(row["text"])) or RouterExample(tenant=tenant)
        is_new = example.pk is None
        for key, value in row.items():
            setattr(example, key, value.strip() if key == "text" else value)
        router_example_save(example=example, embedder=embedder)
        created, updated = created + is_new, updated + (not is_new)
    return created, updated


def router_examples_export(*, tenant: Tenant | None) -> list[dict]:
    scope = tenant_scope(tenant) if tenant else unscoped_scope()
    with scope:
        manager = RouterExample.objects.for_tenant(tenant) if tenant else RouterExample.objects.global_rows()
        return example_rows(manager)


def example_rows(examples) -> list[dict]:
    """Examples as JSON-lines rows, in a stable order."""
    return [{key: getattr(e, key) for key in FIELDS} for e in examples.order_by("intent", "complexity", "id")]


def as_json_lines(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def starter_examples_ensure() -> int:
    """The starter few-shot examples, global, when there are no global examples yet. Returns
    how many were created (0 when the operator's global set is in place)."""
    with unscoped_scope():
        present = RouterExample.objects.global_rows().exists()
    if present:
        return 0
    created, _ = router_examples_import(rows=parse_lines(STARTER_EXAMPLES.read_text().splitlines()), tenant=None)
    return created
