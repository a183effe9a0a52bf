"""The verifier as the cache uses it: one decision for a borderline pair.

``PairVerifier`` wraps a trained model; ``ActiveVerifier`` is what the live
cache holds: it follows the operator's active ``VerifierModel`` through the row
cache (saascore/ttl.py: checked in the background every few seconds, so
activating or retiring a model reaches every worker without a restart and no
hit waits on PostgreSQL) and has no opinion when none is active.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import DatabaseError

from ai.cache.judge import Verification
from ai.embeddings import get_embedder
from ai.verifier.models import VerifierModel
from saascore.ttl import TTLCache

if TYPE_CHECKING:  # scikit-learn loads only once a verifier is active
    from ai.verifier.learn import TrainedVerifier

log = logging.getLogger(__name__)
REFRESH_SECONDS = 5.0


@dataclass
class PairVerifier:
    trained: "TrainedVerifier"
    embedder: object
    min_score: float
    verify_below: float = 1.01
    _primed: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)

    def prime(self, pairs: Sequence[tuple[str, str]], cosines: Sequence[float]) -> None:
        """Score many pairs in one batch ahead of ``verify`` (evaluation); the same scores, faster."""
        scores = self.trained.scores(pairs, cosines, self.embedder)
        self._primed.update(zip(pairs, (float(s) for s in scores), strict=True))

    def score(self, query: str, candidate: str, similarity: float) -> float:
        primed = self._primed.get((query, candidate))
        if primed is not None:
            return primed
        return float(self.trained.scores([(query, candidate)], [similarity], self.embedder)[0])

    def verify(self, query: str, candidate: str, similarity: float) -> Verification | None:
        if similarity >= self.verify_below:
            return None
        score = self.score(query, candidate, similarity)
        return Verification(score >= self.min_score, score)


def _active_version() -> tuple | None:
    row = VerifierModel.objects.filter(active=True).values("pk", "updated_at").first()
    return (row["pk"], row["updated_at"]) if row else None


def _load_active() -> PairVerifier | None:
    record = VerifierModel.objects.filter(active=True).first()
    if record is None:
        return None
    # scikit-learn (a 2-3 s import holding the GIL) loads only once a verifier is active.
    from ai.verifier.learn import TrainedVerifier

    try:
        trained = TrainedVerifier.from_bytes(bytes(record.blob))
    except ValueError as error:
        log.error("Verifier #%s is not usable: %s", record.pk, error)
        return None
    embedder = get_embedder()
    if embedder.id != trained.embedder_id:
        log.error("Verifier #%s was trained with %s, the cache embeds with %s: not used", record.pk,
                  trained.embedder_id, embedder.id)  # fmt: skip
        return None
    log.info("Cache verifier #%s active (min score %.3f, below cosine %.2f)", record.pk, record.min_score,
             record.verify_below)  # fmt: skip
    return PairVerifier(trained, embedder, record.min_score, record.verify_below)


# The row cache's rules: a hit never waits on PostgreSQL for the verifier; every few seconds a
# background check of the active row's version (the fingerprint) loads a changed model.
_active = TTLCache("verifier", lambda: REFRESH_SECONDS).forget_on_change(VerifierModel)


class ActiveVerifier:
    def verify(self, query: str, candidate: str, similarity: float) -> Verification | None:
        current = self.current()
        return current.verify(query, candidate, similarity) if current else None

    def current(self) -> PairVerifier | None:
        try:
            return _active.get("active", _load_active, fingerprint=_active_version)
        except DatabaseError:  # never loaded and PostgreSQL unavailable: no verifier until it answers
            log.warning("Could not read the active verifier", exc_info=True)
            return None
