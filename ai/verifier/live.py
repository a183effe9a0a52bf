"""The verifier as the cache uses it: one decision for a borderline pair.

``PairVerifier`` wraps a trained model; ``ActiveVerifier`` is what the live
cache holds: it follows the operator's active ``VerifierModel`` (checked every
few seconds, so activating or retiring a model reaches every worker without a
restart) and has no opinion when none is active.
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import DatabaseError

from ai.cache.judge import Verification
from ai.embeddings import get_embedder
from ai.verifier.models import VerifierModel

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


class ActiveVerifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._version: tuple | None = None
        self._current: PairVerifier | None = None

    def verify(self, query: str, candidate: str, similarity: float) -> Verification | None:
        current = self.current()
        return current.verify(query, candidate, similarity) if current else None

    def current(self) -> PairVerifier | None:
        if time.monotonic() - self._checked_at >= REFRESH_SECONDS:
            with self._lock:
                if time.monotonic() - self._checked_at >= REFRESH_SECONDS:
                    self._refresh()
        return self._current

    def _refresh(self) -> None:
        self._checked_at = time.monotonic()
        try:
            row = VerifierModel.objects.filter(active=True).values("pk", "updated_at").first()
            version = (row["pk"], row["updated_at"]) if row else None
            if version == self._version:
                return
            self._version, self._current = version, None
            if row is None:
                return
            # scikit-learn (a 2-3 s import holding the GIL) loads only once a verifier is active.
            from ai.verifier.learn import TrainedVerifier

            record = VerifierModel.objects.get(pk=row["pk"])
            trained = TrainedVerifier.from_bytes(bytes(record.blob))
        except DatabaseError:
            log.warning("Could not read the active verifier; keeping the previous one", exc_info=True)
            return
        except ValueError as error:
            log.error("Verifier #%s is not usable: %s", row["pk"], error)
            return
        embedder = get_embedder()
        if embedder.id != trained.embedder_id:
            log.error("Verifier #%s was trained with %s, the cache embeds with %s: not used", record.pk,
                      trained.embedder_id, embedder.id)  # fmt: skip
            return
        self._current = PairVerifier(trained, embedder, record.min_score, record.verify_below)
        log.info("Cache verifier #%s active (min score %.3f, below cosine %.2f)", record.pk, record.min_score,
                 record.verify_below)  # fmt: skip
