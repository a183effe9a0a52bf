"""Is a cached question "the same question" as the one asked? One decision,
used by the live cache and by ``manage.py eval_cache`` alike.

1. cosine similarity of the two query embeddings >= the caller's threshold;
2. cheap guards veto pairs that differ in numbers or in negation;
3. optionally, the router must have given both questions the same intent;
4. evidence: when the tenant's documents say what both questions are about (the
   document whose bootstrapped question is nearest each: ``RoutingDecision.documents``,
   stored with the entry), it must be the same document. "How long are dogs
   pregnant?" is near "How long are cats pregnant?" in wording, not in evidence;
5. a verifier, when configured, must agree: it scores the pair (in the
   borderline band it chooses) and accepts or rejects it (``ai/verifier``).
"""

import re
from dataclasses import dataclass
from typing import Protocol

# A number on its own ("5", "3.5", "1,000"), not one that is part of a name: "COVID-19", "H1N1",
# "B12" and "MP3" say which thing, and a question that writes "covid" asks about the same one.
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(?:not|no|never|without|cannot|nor)\b|n't\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verification:
    accepted: bool
    score: float


class Verifier(Protocol):
    def verify(
        self, query: str, candidate: str, similarity: float, *, tenant_id: int | None = None
    ) -> Verification | None:
        """Accept or reject a pair of ``tenant_id``'s cache; None when it has no opinion (no model,
        outside its band)."""


@dataclass(frozen=True)
class Verdict:
    hit: bool
    reason: str
    similarity: float
    verifier_score: float | None = None


def numbers(text: str) -> set[str]:
    return {match.replace(",", ".") for match in _NUMBER.findall(text)}


def negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


def guard_veto(query: str, candidate: str) -> str | None:
    """The guard that vetoes this pair, or None."""
    if numbers(query) != numbers(candidate):
        return "guard_numbers"
    if negated(query) != negated(candidate):
        return "guard_negation"
    return None


@dataclass(frozen=True)
class HitJudge:
    guards: bool = True
    require_same_intent: bool = False
    verifier: Verifier | None = None

    def judge(
        self,
        query: str,
        candidate: str,
        similarity: float,
        threshold: float,
        *,
        query_intent: str | None = None,
        candidate_intent: str | None = None,
        query_documents: tuple[int, ...] = (),
        candidate_documents: tuple[int, ...] = (),
        tenant_id: int | None = None,
    ) -> Verdict:
        if similarity < threshold:
            return Verdict(False, "below_threshold", similarity)
        if self.guards and (veto := guard_veto(query, candidate)):
            return Verdict(False, veto, similarity)
        if self.require_same_intent and query_intent and candidate_intent and query_intent != candidate_intent:
            return Verdict(False, "intent_mismatch", similarity)
        if query_documents and candidate_documents and query_documents[0] != candidate_documents[0]:
            return Verdict(False, "evidence_disagrees", similarity)
        if self.verifier is not None and (
            check := self.verifier.verify(query, candidate, similarity, tenant_id=tenant_id)
        ):
            if not check.accepted:
                return Verdict(False, "verifier_rejected", similarity, check.score)
            return Verdict(True, "verified", similarity, check.score)
        return Verdict(True, "similar", similarity)
