"""A tenant's rating of an answer (``POST /api/v1/ai/feedback``, ``POST /v1/feedback``).

The request is found in the tenant's own ledger (by its request id, or by the cache
key the answer carried): what the client sends never names another tenant's data,
and a request or key the ledger does not know is a 404.

- ``bad``: the cached entry behind the answer is dropped from every tier at once (the
  exact key, the original behind an alias, every alias, the vector: ``SemanticCache.aevict``).
- A hit whose question differs from the cached one also labels that pair for the
  tenant (``LabelledPair``: 1 for good, 0 for bad; a second rating of the same request
  replaces the first). ``train_verifier --tenant`` and ``eval_cache --tenant`` learn from them.
"""

from dataclasses import dataclass

from django.db import DatabaseError

from ai.cache import get_cache
from ai.cache.keys import normalise
from ai.verifier.models import LabelledPair
from billing.group_commit import ledger
from billing.models import UsageRecord
from saascore import metrics
from saascore.api.errors import ApiError
from saascore.pools import in_db
from tenants.models import Tenant
from tenants.scoping import tenant_scope

HIT_SOURCES = (UsageRecord.Source.CACHE_EXACT, UsageRecord.Source.CACHE_SEMANTIC)
# A hit answers before its ledger row's commit (billing/journal.py): a rating waits this long
# at most for the rows this worker holds.
LEDGER_WAIT_SECONDS = 2.0


class NotFound(ApiError):
    status, code = 404, "not_found"


class CacheUnavailable(ApiError):
    status, code = 503, "cache_unavailable"


@dataclass(frozen=True)
class Rated:
    request_id: str
    cache_key: str
    evicted: bool  # a bad rating dropped a cached entry
    labelled: bool  # a pair was recorded for the tenant's verifier

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _answered(tenant_id: int, *, request_id: str | None, cache_key: str | None) -> dict | None:
    """The tenant's ledger row of the rated answer: the request named, or the newest one the
    named cache entry answered (a hit) or was stored from."""
    columns = ("request_id", "source", "cache_key", "asked_question", "cached_question", "created_at")
    with tenant_scope(tenant_id):
        rows = UsageRecord.objects.for_tenant(tenant_id)
        if request_id is not None:
            return rows.filter(request_id=request_id).values(*columns).first()
        return rows.filter(cache_key=cache_key).order_by("-created_at").values(*columns).first()


def _label(tenant_id: int, row: dict, *, same: bool, comment: str) -> bool:
    """Record (or replace) the pair a rated hit makes; False when the hit makes none (not a hit,
    the question held personal data, or it was the cached question itself)."""
    asked, cached = row["asked_question"], row["cached_question"]
    if row["source"] not in HIT_SOURCES or not asked or not cached or normalise(asked) == normalise(cached):
        return False
    with tenant_scope(tenant_id):
        LabelledPair.objects.update_or_create(
            tenant_id=tenant_id,
            request_id=row["request_id"],
            source=LabelledPair.Source.FEEDBACK,
            defaults={"text_a": asked, "text_b": cached, "same": same, "note": comment[:300]},
        )
    return True


async def feedback_record(
    *, tenant: Tenant, rating: str, request_id: str | None = None, cache_key: str | None = None, comment: str = ""
) -> Rated:
    """Raises NotFound (the tenant's ledger knows neither) and CacheUnavailable (a bad rating
    whose entry Redis could not drop now; the label is kept, a retry is safe)."""
    await in_db(ledger.wait_idle, LEDGER_WAIT_SECONDS)  # a hit this worker just answered: its row is in
    try:
        row = await in_db(_answered, tenant.pk, request_id=request_id, cache_key=cache_key)
    except DatabaseError:
        row = None
        if request_id is not None:
            raise
    if row is None and request_id is not None:
        raise NotFound("No request with this id in your ledger.")
    key = row["cache_key"] if row else cache_key
    labelled = await in_db(_label, tenant.pk, row, same=rating == "good", comment=comment) if row else False
    evicted = False
    if rating == "bad" and key:
        # The answer rated, not a newer one stored under the same key since.
        stored_by = row["created_at"].timestamp() if row else None
        dropped = await get_cache().aevict(tenant.pk, key, stored_by=stored_by)
        if dropped is None:
            metrics.CACHE_FEEDBACK.labels(rating=rating, outcome="unavailable").inc()
            raise CacheUnavailable("The cache could not drop this answer now; retry.", retry_after=1)
        evicted = dropped > 0
    if row is None and not evicted:
        raise NotFound("No answer with this cache key in your ledger or your cache.")
    outcome = "evicted" if evicted else "labelled" if labelled else "recorded"
    metrics.CACHE_FEEDBACK.labels(rating=rating, outcome=outcome).inc()
    return Rated(row["request_id"] if row else "", key or "", evicted, labelled)
