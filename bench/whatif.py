"""What-if patches for the gateway under the saturation bench (never used by the product).

They answer "how much faster would hits be if ...?" without changing product code:
bench/gunicorn_whatif.py applies them in each gunicorn worker after it starts.

    lockfree-admission   a tenant without a monthly spend limit skips the spend
                         counter's row lock: no reservation at admission, and
                         settling adds a non-zero cost with one UPDATE (no
                         SELECT ... FOR UPDATE, nothing for a zero-cost hit).
                         Tenants with a limit keep the product's admission.
                         (Measured before 7565920; the product now skips
                         the counter for such tenants' free answers itself.)
    gc-log               log the workers' garbage collections of the oldest
                         generation, and any over 50 ms, with their duration.
"""

import time
from datetime import UTC, datetime


def _lockfree_admission() -> None:
    from django.db.models import F

    import ai.pipeline as pipeline
    from billing import services
    from billing.models import SpendCounter
    from billing.pricing import ZERO
    from tenants.scoping import tenant_scope

    product_admit, product_settle = services.admit, services.settle

    def admit(*, tenant, client=None, now=None):
        budget = services.budget_for(tenant)
        if budget.monthly_spend_limit is not None:
            return product_admit(tenant=tenant, client=client, now=now)
        services._rate_check(client, tenant, budget.requests_per_minute, time.time())
        return services.Admission(tenant.pk, services._period(now or datetime.now(UTC)), ZERO, "")

    def settle(*, admission, cost):
        if admission.token:
            return product_settle(admission=admission, cost=cost)
        if not cost:
            return None
        with tenant_scope(admission.tenant_id):
            counters = SpendCounter.objects.for_tenant(admission.tenant_id)
            counters.bulk_create(
                [SpendCounter(tenant_id=admission.tenant_id, period=admission.period)], ignore_conflicts=True
            )
            counters.filter(period=admission.period).update(committed=F("committed") + cost)
        return None

    pipeline.admit, pipeline.settle = admit, settle


def _gc_log() -> None:
    """Log every garbage collection of the oldest generation and any collection over 50 ms (stderr)."""
    import gc
    import sys

    started: dict[str, float] = {}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started["t"] = time.perf_counter()
            return
        ms = (time.perf_counter() - started.get("t", time.perf_counter())) * 1000
        if info["generation"] == 2 or ms > 50:
            objects = len(gc.get_objects(generation=2)) if info["generation"] == 2 else -1
            sys.stderr.write(f"bench-gc generation={info['generation']} ms={ms:.1f} gen2_objects={objects}\n")

    gc.callbacks.append(callback)


PATCHES = {"lockfree-admission": _lockfree_admission, "gc-log": _gc_log}


def apply(names: str) -> list[str]:
    applied = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        PATCHES[name]()
        applied.append(name)
    return applied
