"""The usage ledger, budgets, spend counters and reservations (prices: the catalog app)."""

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from tenants.audit import AuditedHistory, TenantAuditRecord
from tenants.models import ApiKey
from tenants.scoping import TenantOwnedModel

MAX_TAGS = 10
MAX_TAG_LENGTH = 64


class UsageRecord(TenantOwnedModel):
    """One row per request: append-only, unique on (tenant, request_id), money in NUMERIC.

    ``cost`` is what the request cost (answer + router + embedding calls, at
    the prices in force when it ran). For a cache hit, ``saved`` is what the
    original answer's tokens (``saved_*_tokens``) would have cost on the model
    the router chose for this request.
    """

    class Source(models.TextChoices):
        LLM = "llm", "LLM"
        CACHE_EXACT = "cache_exact", "Cache (exact)"
        CACHE_SEMANTIC = "cache_semantic", "Cache (semantic)"
        ERROR = "error", "Error"
        EMBEDDING = "embedding", "Embeddings (POST /v1/embeddings)"

    request_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices)
    model = models.CharField(max_length=100, blank=True, help_text="The model that answered, or was routed to.")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    router_model = models.CharField(max_length=100, blank=True)
    router_input_tokens = models.PositiveIntegerField(default=0)
    router_output_tokens = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=100, blank=True)
    embedding_tokens = models.PositiveIntegerField(default=0)
    saved_input_tokens = models.PositiveIntegerField(default=0)
    saved_output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=10, default=Decimal(0))
    saved = models.DecimalField(max_digits=18, decimal_places=10, default=Decimal(0))
    # For hits: the cached question that answered (never personal data: such answers are not cached).
    cached_question = models.CharField(max_length=500, blank=True)
    # The end user the tenant named (``user_id`` on /api/v1/ai/query, ``user`` on /v1/), as given.
    end_user = models.CharField(max_length=128, blank=True, default="")
    # The cache entry that answered (a hit) or that the answer was stored as (a miss), as the client
    # saw it (``x-saascore-cache-key``): what feedback on this request evicts.
    cache_key = models.CharField(max_length=64, blank=True, default="")
    # For hits: the question asked, unless it holds personal data: feedback on the hit labels the
    # pair (asked, cached question) for the tenant's verifier.
    asked_question = models.CharField(max_length=500, blank=True, default="")
    # The API key that asked (no constraint: the append-only ledger keeps a deleted key's id), and
    # the caller's tags (``x-saascore-tags``, ``metadata.tags``: sanitised, at most MAX_TAGS).
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    tags = ArrayField(models.CharField(max_length=MAX_TAG_LENGTH), size=MAX_TAGS, default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "request_id"], name="usage_tenant_request_uniq")]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_tenant_created_idx"),
            models.Index(fields=["tenant", "api_key", "created_at"], name="usage_tenant_key_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.source} ${self.cost}"


class TenantBudget(TenantOwnedModel):
    """Limits of a tenant: requests per minute and monthly spend (None: unlimited)."""

    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, default=600)
    monthly_spend_limit = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    soft_alert_ratio = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.800"), help_text="Alert when spend passes this share."
    )
    # The most one request may cost: reserved at admission, settled after.
    max_request_cost = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal("0.060000"))
    # Budget alerts (the tenant's and its keys'): POSTed here, signed with the secret (billing/webhooks.py).
    alert_webhook_url = models.URLField(blank=True, default="", help_text="https://... (empty: no webhook)")
    alert_webhook_secret = models.CharField(
        max_length=64, blank=True, default="", help_text="HMAC-SHA256 key of X-Saascore-Signature."
    )

    history = AuditedHistory(
        base=TenantAuditRecord, excluded_fields=["alert_webhook_secret"], verbose_name="tenant budget change"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="tenantbudget_tenant_uniq")]

    def __str__(self) -> str:
        return f"budget of tenant {self.tenant_id}"


class SpendCounter(TenantOwnedModel):
    """Month-to-date spend: the sum of the month's ledger costs, moved with each row that goes in.
    A tenant's admissions lock it, one at a time."""

    period = models.CharField(max_length=7, help_text="YYYY-MM (UTC)")
    committed = models.DecimalField(max_digits=18, decimal_places=10, default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period"], name="spendcounter_tenant_period_uniq")]


class KeySpendCounter(TenantOwnedModel):
    """A budgeted key's spend in one period (``YYYY-MM`` and ``YYYY-MM-DD``, UTC), moved with the
    ledger's rows like ``SpendCounter``; a key's admissions lock it."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    period = models.CharField(max_length=10)
    committed = models.DecimalField(max_digits=18, decimal_places=10, default=Decimal(0))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "api_key", "period"], name="keyspendcounter_uniq"),
        ]


class SpendReservation(TenantOwnedModel):
    """What an admitted, unfinished request may still spend. It ends with its request, or
    expires (the request's worker died) and stops counting."""

    amount = models.DecimalField(max_digits=10, decimal_places=6)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "expires_at"], name="reservation_tenant_expires_idx")]

    def __str__(self) -> str:
        return f"${self.amount} reserved until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class BudgetAlert(TenantOwnedModel):
    """A soft budget level passed (the tenant's, or a key's): one row per (tenant, key, period),
    so an alert is never sent twice; its webhook delivery is recorded here."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        NO_WEBHOOK = "no_webhook", "No webhook set"

    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    # 0 for the tenant's own alert: a unique key needs no NULL.
    key_ref = models.BigIntegerField(default=0)
    period = models.CharField(max_length=10)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=4)
    spent_usd = models.DecimalField(max_digits=18, decimal_places=10)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key_ref", "period"], name="budgetalert_once_uniq"),
        ]

    def __str__(self) -> str:
        who = f"key {self.key_ref}" if self.key_ref else "tenant"
        return f"{who} passed its soft level in {self.period} ({self.status})"
