"""The durable half of cache invalidation (ai/cache/invalidation.py)."""

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwnedModel


class PendingInvalidation(TenantOwnedModel):
    """A tenant's cache generation must move because something its answers rest on changed.

    Written in the transaction of the change itself (or by a flush Redis refused), so a
    commit always leaves either this row or a generation already moved; deleted once a
    generation bump that began after its commit has succeeded.

    Every tenant may read every row (policy ``cross_tenant_read``: a row holds a tenant id
    and a time, nothing of the tenant's data), so any process can find the invalidations
    it must apply without the unscoped role; writes stay within the tenant
    (tenants/SCOPING.md).
    """

    # No foreign-key constraint: deleting a tenant deletes its documents, whose own
    # invalidation rows are written during that delete, after the tenant's rows were
    # collected. A row that outlives its tenant is applied and deleted like any other.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="pendinginval_tenant_id")]

    def __str__(self) -> str:
        return f"cache invalidation of tenant {self.tenant_id} pending since {self.created_at:%Y-%m-%d %H:%M:%S}"
