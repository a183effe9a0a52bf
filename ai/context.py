"""What a query carries through the pipeline (ai/pipeline.py): who asked and how
(``QueryContext``, its ``CacheControl``), what it consumed before its answer (``Spent``),
what routing decided (``Routed``), and what it answers (``QueryResult``)."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from ai.cache import CacheScope
from ai.embeddings import Embedder
from ai.router.decisions import RoutingDecision
from ai.tenant_settings.models import TenantAISettings
from billing.key_admission import KeyAdmission, allowed_chain
from billing.services import Usage, price_usage
from tenants.models import ApiKey, Tenant


@dataclass
class QueryResult:
    response: str
    source: str  # "cache" | "llm"
    cache: dict
    model_used: str
    routing: dict | None
    citations: list[dict]
    usage: dict
    request_id: str
    latency_ms: float = 0.0
    headers: dict = field(default_factory=dict)
    finish_reason: str = "stop"  # the model's: "length" when cut at max_tokens

    def as_dict(self) -> dict:
        return {
            "response": self.response,
            "source": self.source,
            "cache": self.cache,
            "model_used": self.model_used,
            "routing": self.routing,
            "citations": self.citations,
            "usage": self.usage,
            "latency_ms": self.latency_ms,
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class CacheControl:
    """A request's cache controls: LiteLLM's convention (the OpenAI-compatible API's
    ``cache`` object); ``/api/v1/ai/query``'s ``cache`` modes are aliases (``from_mode``).

    ``read`` False is ``no-cache`` (answer anew, store it), ``write`` False is ``no-store``
    (answer from the cache, never store); ``ttl`` shortens the stored entry's life (never
    past the tenant's ``cache_ttl_seconds``); ``max_age`` (``s-maxage``) accepts only entries
    younger than that; ``namespace`` is part of the scope's key (ai/cache/keys.py).
    """

    read: bool = True
    write: bool = True
    ttl: int | None = None
    max_age: int | None = None
    namespace: str = ""

    @classmethod
    def from_mode(cls, mode: str) -> "CacheControl":
        return {"bypass": cls(read=False, write=False), "refresh": cls(read=False)}.get(mode, cls())


def context_digest(*, history: tuple[dict, ...] = (), model: str | None = None, namespace: str = "") -> str:
    """What an answer depends on besides its question: the conversation before it (system
    prompt and earlier turns, verbatim), a model the caller named, the caller's namespace.
    "" when there is none of these, so a lone question shares the tenant's cache whichever
    API asked it."""
    if not history and not model and not namespace:
        return ""
    raw = json.dumps([list(history), model or "", namespace], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who asks besides the tenant: the API key (its own limits) and the caller's tags."""

    api_key: ApiKey | None = None
    tags: tuple[str, ...] = ()

    @property
    def api_key_id(self) -> int | None:
        return self.api_key.pk if self.api_key else None

    def chain(self, chain: list[str]) -> list[str]:
        """The route's models this key may use (403 when none)."""
        return allowed_chain(self.api_key, chain)


NOBODY = Caller()


@dataclass(frozen=True)
class QueryContext:
    """One query, as far as it is known before it is embedded."""

    tenant: Tenant
    query: str
    request_id: str  # the server's id of this request
    ledger_id: str  # the id its answer is billed under
    settings: TenantAISettings
    scope: CacheScope
    embedder: Embedder
    use_cache: bool  # read and/or write the cache
    read_cache: bool  # answer from it ("refresh" writes only)
    control: CacheControl = CacheControl()
    history: tuple[dict, ...] = ()  # a conversation's messages before the question (role, content)
    route: tuple[str, tuple[str, ...]] | None = None  # a model the caller named, and its fallbacks
    user_id: str | None = None  # the end user the caller named (attribution; the scope has it if per user)
    caller: Caller = NOBODY
    admission: KeyAdmission | None = None  # the tenant's and key's rate windows (billing/key_admission.py)

    def fresh(self, created_at: float, now: float) -> bool:
        """May an entry made at ``created_at`` answer (``s-maxage``)?"""
        return self.control.max_age is None or now - created_at <= self.control.max_age

    def ttl(self) -> int:
        wanted = self.control.ttl
        return self.settings.cache_ttl_seconds if wanted is None else min(wanted, self.settings.cache_ttl_seconds)


@dataclass(frozen=True)
class Spent:
    """What the query consumed before its answer: the embedding, an LLM router call."""

    embedding_model: str = ""
    embedding_tokens: int = 0
    router_model: str = ""
    router_input_tokens: int = 0
    router_output_tokens: int = 0

    def usage(self, ctx: QueryContext, *, source: str, model: str, **tokens: int | str) -> Usage:
        """The ledger's usage of this query: a failed one under its own request id, so that
        a retry with the same ledger id (an idempotent retry) is still billed when it answers."""
        request_id = ctx.request_id if source == "error" else ctx.ledger_id
        who = {"end_user": ctx.user_id or "", "api_key_id": ctx.caller.api_key_id, "tags": ctx.caller.tags}
        return Usage(request_id=request_id, source=source, model=model, **who, **self.__dict__, **tokens)

    def cost(self) -> Decimal:
        usage = Usage(request_id="", source="", **self.__dict__)
        return price_usage(usage, datetime.now(UTC))[0]


NOTHING_SPENT = Spent()


@dataclass(frozen=True)
class Routed:
    """A query past the exact tier: embedded once, routed, its cache threshold chosen."""

    vector: np.ndarray
    decision: RoutingDecision
    spent: Spent
    generation: int | None  # the cache generation its lookups read (None: Redis could not say)
    threshold: float | None  # None: the cache is not used for this query
    whole: bool  # the embedder saw all of it (else: no semantic match, no vector stored)

    @property
    def routing(self) -> dict:
        return self.decision.as_dict()
