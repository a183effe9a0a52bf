"""A cache entry and its Redis HASH encoding."""

import json
import time
from dataclasses import dataclass, field

import numpy as np

# HASH field names; short, since there is one set per entry.
_FIELDS = {
    "query": "q",
    "response": "r",
    "model": "m",
    "intent": "i",
    "input_tokens": "it",
    "output_tokens": "ot",
    "created_at": "ca",
    "threshold": "th",
    "generation": "g",
    "extra": "x",
}
VECTOR_FIELD = "v"
SCOPE_FIELD = "s"
FETCH_FIELDS = [*_FIELDS.values(), VECTOR_FIELD]


@dataclass
class CacheEntry:
    query: str
    response: str
    model: str = ""
    intent: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: float = field(default_factory=time.time)
    threshold: float | None = None
    generation: int = 0
    extra: dict = field(default_factory=dict)
    vector: np.ndarray | None = None

    def to_redis(self, scope_digest: str) -> dict[str, bytes | str | int | float]:
        mapping: dict[str, bytes | str | int | float] = {
            _FIELDS["query"]: self.query,
            _FIELDS["response"]: self.response,
            _FIELDS["model"]: self.model,
            _FIELDS["intent"]: self.intent,
            _FIELDS["input_tokens"]: self.input_tokens,
            _FIELDS["output_tokens"]: self.output_tokens,
            _FIELDS["created_at"]: self.created_at,
            _FIELDS["threshold"]: "" if self.threshold is None else self.threshold,
            _FIELDS["generation"]: self.generation,
            _FIELDS["extra"]: json.dumps(self.extra, separators=(",", ":")),
            SCOPE_FIELD: scope_digest,
        }
        if self.vector is not None:
            mapping[VECTOR_FIELD] = np.asarray(self.vector, dtype=np.float32).tobytes()
        return mapping

    @property
    def about(self) -> tuple[int, ...]:
        """The tenant's documents its question was about when it was answered, nearest first
        (``RoutingDecision.documents``)."""
        return tuple(self.extra.get("about", ()))

    @classmethod
    def from_values(cls, values: list[bytes | None]) -> "CacheEntry | None":
        """From an HMGET of ``FETCH_FIELDS``; None when the entry is gone."""
        raw = dict(zip(FETCH_FIELDS, values, strict=True))
        if raw[_FIELDS["response"]] is None:
            return None

        def text(name: str) -> str:
            value = raw[_FIELDS[name]]
            return value.decode() if value is not None else ""

        threshold = text("threshold")
        vector = raw[VECTOR_FIELD]
        return cls(
            query=text("query"),
            response=text("response"),
            model=text("model"),
            intent=text("intent"),
            input_tokens=int(text("input_tokens") or 0),
            output_tokens=int(text("output_tokens") or 0),
            created_at=float(text("created_at") or 0),
            threshold=float(threshold) if threshold else None,
            generation=int(text("generation") or 0),
            extra=json.loads(text("extra") or "{}"),
            vector=np.frombuffer(vector, dtype=np.float32) if vector else None,
        )
