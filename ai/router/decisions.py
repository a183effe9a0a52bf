"""What the router decides for a query."""

from dataclasses import dataclass, field
from enum import StrEnum


class Intent(StrEnum):
    RETRIEVAL = "retrieval"
    CHAT = "chat"
    ANALYSIS = "analysis"
    ERROR = "error"


class Complexity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CacheStrategy(StrEnum):
    AGGRESSIVE = "aggressive"
    STANDARD = "standard"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Neighbour:
    text: str
    intent: str
    complexity: str
    cache_strategy: str
    similarity: float
    scope: str  # "tenant" | "global"


@dataclass(frozen=True)
class RoutingDecision:
    intent: Intent
    complexity: Complexity
    model: str
    cache_strategy: CacheStrategy
    confidence: float
    fallbacks: tuple[str, ...] = ()
    source: str = "local"  # local | llm | failsafe
    reason: str = ""
    neighbours: tuple[Neighbour, ...] = field(default=(), compare=False)
    # (model, input tokens, output tokens) of an LLM router call, for billing.
    router_usage: tuple[str, int, int] | None = None
    # The tenant's documents this query is about (bootstrapped questions near it), nearest
    # first: a cached answer built from none of them is not this query's (ai/cache/judge.py).
    documents: tuple[int, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict:
        return {
            "intent": str(self.intent),
            "complexity": str(self.complexity),
            "model": self.model,
            "cache_strategy": str(self.cache_strategy),
            "confidence": round(self.confidence, 4),
        }
