"""Admission of one request by its tenant's and its API key's limits, and OpenAI's rate-limit headers.

``aadmit`` checks the tenant's requests per minute and the key's own requests per minute,
tokens per minute and parallel requests in one Redis round trip (billing/limiter.py). The first
limit that refuses is the 429: ``details.limit`` and ``details.scope`` (tenant or key) name it,
``Retry-After`` says when, and the rate-limit headers come with it. The answer carries OpenAI's
headers, ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, each from the limit that
binds most (the least remaining) of the tenant's and the key's. Tokens are counted from each
answer's ledger row (``acount``); the parallel slot is released by ``arelease`` (idempotent),
whatever ends the request.

Not guaranteed: while Redis is unreachable nothing here refuses (the spend limits, in
PostgreSQL, still hold), and the answer has no rate-limit headers.
"""

import time
from dataclasses import dataclass, field

from billing import limiter
from billing.admission import counted_windows, raise_refused
from billing.budgets import abudget_for
from billing.limiter import Limits, Window
from saascore.api.errors import ApiError
from saascore.pools import in_background
from saascore.redis.guard import RedisGuard
from tenants.models import ApiKey, Tenant

_SUFFIX = {"requests_per_minute": "requests", "tokens_per_minute": "tokens"}
TOKEN_FIELDS = ("input_tokens", "output_tokens", "router_input_tokens", "router_output_tokens")


class ModelNotAllowedForKey(ApiError):
    status, code = 403, "model_not_allowed"


@dataclass
class KeyAdmission:
    """One admitted request: where its limits stand, its parallel slot, its tokens."""

    tenant_id: int
    api_key: ApiKey | None
    request_id: str
    guard: RedisGuard | None
    windows: list[Window] = field(default_factory=list)
    claimed: bool = False
    tokens_used: int = 0

    def headers(self) -> dict[str, str]:
        """OpenAI's rate-limit headers, each kind from its most binding window."""
        headers = {}
        for name, suffix in _SUFFIX.items():
            found = [w for w in self.windows if w.name == name]
            if not found:
                continue
            window = min(found, key=lambda w: w.remaining)
            remaining = window.remaining - (self.tokens_used if name == "tokens_per_minute" else 0)
            headers[f"x-ratelimit-limit-{suffix}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(max(0, remaining))
            headers[f"x-ratelimit-reset-{suffix}"] = limiter.duration(window.reset)
        return headers

    async def acount(self, row: dict) -> None:
        """Count an answer's tokens (its ledger row's) in the key's tokens-per-minute window."""
        key, used = self.api_key, sum(row.get(name, 0) for name in TOKEN_FIELDS)
        if key is None or not key.tokens_per_minute or not used or self.guard is None:
            return
        self.tokens_used += used
        op = lambda: limiter.tokens_count(tenant_id=key.tenant_id, key_id=key.pk, used=used, now=time.time())  # noqa: E731
        await self.guard.arun("key_tokens", op, None)

    async def arelease(self) -> None:
        """Free the parallel slot (idempotent; nothing to do for a key without that limit)."""
        if not self.claimed:
            return
        self.claimed = False
        key = self.api_key
        op = lambda: limiter.parallel_release(tenant_id=key.tenant_id, key_id=key.pk, request_id=self.request_id)  # noqa: E731
        await self.guard.arun("key_parallel", op, None)

    def release_later(self) -> None:
        """``arelease`` without waiting (a response being closed)."""
        if self.claimed:
            in_background(self.arelease())


async def aadmit(*, tenant: Tenant, api_key: ApiKey | None, request_id: str, guard: RedisGuard | None) -> KeyAdmission:
    """Admit a request by its tenant's and key's limits, or raise AdmissionRefused (429)."""
    admission = KeyAdmission(tenant.pk, api_key, request_id, guard)
    limits = Limits(tenant_id=tenant.pk, tenant_rpm=(await abudget_for(tenant)).requests_per_minute or 0)
    if api_key is not None:
        limits = Limits(
            tenant_id=tenant.pk, key_id=api_key.pk, tenant_rpm=limits.tenant_rpm,
            key_rpm=api_key.requests_per_minute or 0, key_tpm=api_key.tokens_per_minute or 0,
            key_parallel=api_key.max_parallel_requests or 0,
        )  # fmt: skip
    if not limits.any or guard is None:
        return admission
    op = lambda: limiter.admit(limits, request_id, time.time())  # noqa: E731
    admission.windows = await counted_windows(guard, op)
    admission.claimed = any(w.name == "parallel_requests" and not w.refused for w in admission.windows)
    raise_refused(admission.windows, admission.headers(), api_key.pk if api_key else None)
    return admission


def allowed_chain(api_key: ApiKey | None, chain: list[str]) -> list[str]:
    """The models of a route chain this key may use, in order; 403 when it may use none."""
    if api_key is None or not api_key.allowed_models:
        return chain
    allowed = [model for model in chain if model in api_key.allowed_models]
    if not allowed:
        raise ModelNotAllowedForKey(
            f"This API key may use {', '.join(api_key.allowed_models)}; this request's route has none of them.",
            details={"allowed_models": list(api_key.allowed_models), "route": chain},
        )
    return allowed
