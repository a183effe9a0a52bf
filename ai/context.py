"""What a query carries through the pipeline (ai/pipeline.py): who asked and how
(``QueryContext``), what it consumed before its answer (``Spent``), what routing
decided (``Routed``), and what it answers (``QueryResult``)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from ai.cache import CacheScope
from ai.embeddings import Embedder
from ai.router.decisions import RoutingDecision
from ai.tenant_settings.models import TenantAISettings
from billing.services import Usage, price_usage
from tenants.models import Tenant


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
        return Usage(request_id=request_id, source=source, model=model, **self.__dict__, **tokens)

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
