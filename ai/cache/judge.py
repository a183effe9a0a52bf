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
   borderline band it chooses) and accepts or rejects it (``ai/verifier``);
6. no rival: when another candidate that asks something else (about another document, or,
   without evidence, not a paraphrase of the one accepted) is within
   ``ambiguity_margin`` of the accepted similarity, the query sits between two cached
   questions and which one it means is unsure (``HitJudge.rivalled``: the ratio test of
   nearest-neighbour matching). "Who is at risk of dying from COVID-19?" is as near
   "Who is at risk for COVID-19?" as "How severe is COVID-19?" is.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

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
    ambiguity_margin: float = 0.0  # 0: no rival check

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

    def rivalled(
        self, chosen: int, similarities: np.ndarray, vectors: np.ndarray, abouts: Sequence[tuple[int, ...]],
        threshold: float,
    ) -> bool:  # fmt: skip
        """Is candidate ``chosen`` (accepted by ``judge``) rivalled by another candidate within the
        margin that asks something else? Candidates are the rows of ``vectors`` (unit length), their
        ``similarities`` to the query and the documents each is ``about``. A rival asks something
        else than the chosen one: when both say what they are about, another document; else their
        own similarity is below ``threshold`` (not a paraphrase of it)."""
        if self.ambiguity_margin <= 0 or len(similarities) < 2:
            return False
        near = np.flatnonzero(similarities >= similarities[chosen] - self.ambiguity_margin)
        for other in near[near != chosen]:
            if abouts[chosen] and abouts[other]:  # the tenant's documents say what each asks about
                if abouts[chosen][0] != abouts[other][0]:
                    return True
            elif float(vectors[chosen] @ vectors[other]) < threshold:  # else: not a paraphrase of it
                return True
        return False
