"""Reads about the cache's state in PostgreSQL (the pending invalidations)."""

from datetime import datetime

from django.db.models import Min

from ai.cache.models import PendingInvalidation


def invalidation_pending_since(*, tenant_id: int) -> datetime | None:
    """When the tenant's oldest invalidation that Redis has not taken yet was recorded; None if none.
    Called inside a scope that sees the tenant's rows (the admin's)."""
    rows = PendingInvalidation.objects.for_tenant(tenant_id)
    return rows.aggregate(since=Min("created_at"))["since"]
