"""The verifier as the cache uses it: one decision for a borderline pair.

``PairVerifier`` wraps a trained model; ``ActiveVerifier`` is what the live
cache holds. For a tenant it asks, in order: the tenant's own active
``VerifierModel`` (trained on its feedback), the operators' active global one,
and the default shipped with the code (``AI["DEFAULT_VERIFIER"]``, trained on
public pairs: ai/verifier/default/README.md). Which model is active is read
through the row cache (saascore/ttl.py: checked in the background every few
seconds per tenant, so activating or retiring a model reaches every worker
without a restart and no hit waits on PostgreSQL once the tenant was seen), each
model's blob is loaded once per process, and a tenant's query reads its own and
the global rows only (Row-Level Security, ``tenant_scope``).
"""

import functools
import logging
import lzma
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DatabaseError

from ai.cache.judge import Verification
from ai.embeddings import get_embedder
from ai.verifier.models import VerifierModel
from saascore.conf import ai_settings
from saascore.ttl import TTLCache
from tenants.scoping import tenant_scope

if TYPE_CHECKING:  # scikit-learn loads only once a verifier is used
    from ai.verifier.learn import TrainedVerifier

log = logging.getLogger(__name__)
REFRESH_SECONDS = 5.0
MAX_LOADED = 64  # model versions kept in a process (each ~1 MB)
DEFAULT_VERIFY_BELOW = 0.97


@dataclass
class PairVerifier:
    trained: "TrainedVerifier"
    embedder: object
    min_score: float
    verify_below: float = 1.01
    name: str = ""
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

    def verify(
        self, query: str, candidate: str, similarity: float, *, tenant_id: int | None = None
    ) -> Verification | None:
        if similarity >= self.verify_below:
            return None
        score = self.score(query, candidate, similarity)
        return Verification(score >= self.min_score, score)


def _usable(trained: "TrainedVerifier", name: str) -> bool:
    embedder_id = get_embedder().id
    if embedder_id != trained.embedder_id:
        log.error("%s was trained with %s, the cache embeds with %s: not used", name, trained.embedder_id, embedder_id)
        return False
    return True


def _from_blob(blob: bytes, name: str) -> "TrainedVerifier | None":
    # scikit-learn (a 2-3 s import holding the GIL) loads only once a verifier is used:
    # gunicorn's post_worker_init loads it before a worker takes requests.
    from ai.verifier.learn import TrainedVerifier

    try:
        trained = TrainedVerifier.from_bytes(blob)
    except ValueError as error:
        log.error("%s is not usable: %s", name, error)
        return None
    return trained if _usable(trained, name) else None


Version = tuple[int, int | None, object]  # (pk, tenant_id, updated_at) of an active row


def _active_rows(tenant_id: int | None) -> tuple[Version, ...]:
    """The active rows a tenant may use (its own and the global one), read in its scope."""
    columns = ("pk", "tenant_id", "updated_at")
    if tenant_id is None:
        return tuple(VerifierModel.objects.global_rows().filter(active=True).values_list(*columns))
    with tenant_scope(tenant_id):
        return tuple(VerifierModel.objects.filter(active=True).order_by("pk").values_list(*columns))


_loaded: dict[tuple[int, object], PairVerifier | None] = {}
_loaded_lock = threading.Lock()


def _model(version: Version) -> PairVerifier | None:
    """The model of one row version, loaded once per process (tenants without their own share the global one)."""
    pk, tenant_id, updated_at = version
    with _loaded_lock:
        if (pk, updated_at) in _loaded:
            return _loaded[(pk, updated_at)]
    if tenant_id is None:
        record = VerifierModel.objects.global_rows().filter(pk=pk).first()
    else:
        with tenant_scope(tenant_id):
            record = VerifierModel.objects.filter(pk=pk).first()
    model = None
    if record is not None and (trained := _from_blob(bytes(record.blob), str(record))):
        log.info("Cache verifier #%s loaded (min score %.3f, below cosine %.2f)", pk, record.min_score,
                 record.verify_below)  # fmt: skip
        model = PairVerifier(trained, get_embedder(), record.min_score, record.verify_below, name=f"#{pk}")
    with _loaded_lock:
        if len(_loaded) >= MAX_LOADED:  # retired versions are not kept forever
            _loaded.clear()
        _loaded[(pk, updated_at)] = model
    return model


def _chosen(tenant_id: int | None) -> PairVerifier | None:
    rows = _active_rows(tenant_id)
    own = [row for row in rows if row[1] is not None]
    for row in own + [row for row in rows if row[1] is None]:
        if (model := _model(row)) is not None:
            return model
    return default_verifier()


def default_path() -> Path | None:
    configured = ai_settings.DEFAULT_VERIFIER
    return Path(configured) if configured else None


@functools.cache
def _shipped(path: Path) -> PairVerifier | None:
    name = f"the default verifier {path}"
    try:
        blob = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
    except (OSError, lzma.LZMAError) as error:
        log.error("%s cannot be read: %s", name, error)
        return None
    trained = _from_blob(blob, name)
    if trained is None:
        return None
    verify_below = trained.report.get("verify_below", DEFAULT_VERIFY_BELOW)
    return PairVerifier(trained, get_embedder(), trained.min_score, verify_below, name="default")


def default_verifier() -> PairVerifier | None:
    path = default_path()
    return _shipped(path) if path else None


# The row cache's rules: a hit never waits on PostgreSQL for the verifier once its tenant was
# seen; every few seconds a background check of the active rows' versions (the fingerprint)
# loads a changed model.
_active = TTLCache("verifier", lambda: REFRESH_SECONDS).forget_on_change(VerifierModel)


class ActiveVerifier:
    def verify(
        self, query: str, candidate: str, similarity: float, *, tenant_id: int | None = None
    ) -> Verification | None:
        current = self.current(tenant_id)
        return current.verify(query, candidate, similarity) if current else None

    def current(self, tenant_id: int | None = None) -> PairVerifier | None:
        try:
            return _active.get(
                ("active", tenant_id), lambda: _chosen(tenant_id), fingerprint=lambda: _active_rows(tenant_id)
            )
        except DatabaseError:  # never loaded and PostgreSQL unavailable: the shipped default until it answers
            log.warning("Could not read the active verifier", exc_info=True)
            return default_verifier()
