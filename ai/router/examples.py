"""Router examples: writes (with their embeddings) and the per-process example sets.

An example's embedding is recomputed when its text or the embedder changes.
Each process keeps the example set of a tenant (its own examples plus the
global ones) in memory (``saascore.ttl``) and checks every few seconds whether
it changed, so an operator's edit reaches every worker within seconds without a
restart, and at once in the process that saved it.
"""

from contextlib import nullcontext
from dataclasses import replace

import numpy as np
from django.db.models import Count, Max

from ai.embeddings import Embedder, get_embedder
from ai.router.decisions import Intent
from ai.router.local import Example, ExampleSet
from ai.router.models import RouterExample, text_hash
from saascore.conf import ai_settings
from saascore.ttl import TTLCache
from tenants.models import Tenant
from tenants.scoping import tenant_scope, unscoped_scope


def router_example_save(*, example: RouterExample, embedder: Embedder | None = None) -> RouterExample:
    """Save an example, embedding its text first if the text or the embedder changed.

    The embedding is computed before the transaction opens (it may be a network call).
    """
    embedder = embedder or get_embedder()
    digest = text_hash(example.text)
    if example.embedding is None or example.text_hash != digest or example.embedder_id != embedder.id:
        example.embedding = embedder.embed([example.text.strip()]).vectors[0]
        example.embedder_id = embedder.id
        example.text_hash = digest
    scope = tenant_scope(example.tenant_id) if example.tenant_id else unscoped_scope()
    with scope:
        example.full_clean(exclude=["embedding"])
        example.save()
    return example


def router_examples_reembed(*, embedder: Embedder | None = None, batch: int = 64) -> int:
    """Embed every example whose embedding is missing or from another embedder. Returns how many."""
    embedder = embedder or get_embedder()
    with unscoped_scope():
        stale = list(RouterExample.objects.unscoped().exclude(embedder_id=embedder.id))
        stale += list(RouterExample.objects.unscoped().filter(embedder_id=embedder.id, embedding__isnull=True))
    for start in range(0, len(stale), batch):
        chunk = stale[start : start + batch]
        vectors = embedder.embed([e.text.strip() for e in chunk]).vectors
        with unscoped_scope():
            for example, vector in zip(chunk, vectors, strict=True):
                example.embedding, example.embedder_id, example.text_hash = vector, embedder.id, text_hash(example.text)
                example.save(update_fields=["embedding", "embedder_id", "text_hash", "updated_at"])
    return len(stale)


def _visible(tenant: Tenant | None):
    return RouterExample.objects.visible_to(tenant) if tenant else RouterExample.objects.global_rows()


def _read(tenant: Tenant | None):
    """Global rows are readable by anyone (RLS ``global_read``); a tenant's need its scope."""
    return tenant_scope(tenant) if tenant else nullcontext()


def _fingerprint(tenant: Tenant | None) -> tuple:
    with _read(tenant):
        summary = _visible(tenant).aggregate(n=Count("id"), changed=Max("updated_at"))
    return summary["n"], summary["changed"]


def _load(tenant: Tenant | None, embedder_id: str) -> ExampleSet:
    with _read(tenant):
        stale = _visible(tenant).exclude(embedder_id=embedder_id).exists()
    if stale:  # the embedder changed: embed again (outside any transaction), then load
        router_examples_reembed()
    with _read(tenant):
        rows = list(
            _visible(tenant)
            .filter(embedder_id=embedder_id, embedding__isnull=False)
            .values_list("text", "intent", "complexity", "cache_strategy", "tenant_id", "document_id", "embedding")
        )
    examples = [
        Example(text, intent, complexity, strategy, "tenant" if owner else "global", document_id=document)
        for text, intent, complexity, strategy, owner, document, _ in rows
    ]
    examples = with_scope_evidence(examples)
    vectors = np.stack([np.asarray(row[6], dtype=np.float32) for row in rows]) if rows else np.zeros((0, 1), np.float32)
    return ExampleSet(examples, vectors)


def with_scope_evidence(examples: list[Example]) -> list[Example]:
    """What a tenant may be asked is what its own examples (hand-written or bootstrapped from
    its documents) are about, and small talk: once it has in-scope examples of its own, the
    global examples still vote on intent, complexity and cache strategy, but only the global
    chat examples count as scope evidence (``ExampleSet.support``). Without any, the global
    examples are the evidence."""
    own = any(e.scope == "tenant" and e.intent != Intent.ERROR for e in examples)
    if not own:
        return examples
    return [e if e.scope == "tenant" or e.intent == Intent.CHAT else replace(e, evidence=False) for e in examples]


_sets = TTLCache("router-example-sets", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(RouterExample)


def example_set_for(tenant: Tenant | None, embedder_id: str) -> ExampleSet:
    """The tenant's examples plus the global ones. Loaded again only when they changed (their
    count or newest edit), checked at most every ``AI["ROW_CACHE_SECONDS"]``."""
    key = (tenant.pk if tenant else None, embedder_id)
    return _sets.get(key, lambda: _load(tenant, embedder_id), fingerprint=lambda: _fingerprint(tenant))


def forget_example_sets() -> None:
    """Drop every cached set (tests, and after bulk imports in this process)."""
    _sets.clear()
