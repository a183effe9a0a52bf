"""Nearest chunks of one tenant's documents (pgvector HNSW, cosine).

Every search is filtered by tenant and runs with ``hnsw.iterative_scan``: the
index keeps scanning until it has k rows of this tenant, so a small tenant
among large ones still gets k results.

Never a chunk of text a document no longer holds: the services delete a
document's chunks in the transaction that changes its text, and retrieval
drops any chunk whose document's content hash is not the one the chunk was
made from (``ingested_hash``), should a writer ever go around the services:
fewer than k rows rather than old text. The check reads the joined row and is
not a SQL filter, which would steer the planner away from the HNSW index
(measured: 108 ms instead of 8 ms for 40,000 chunks).
"""

from dataclasses import dataclass

import numpy as np
from django.db import connection
from pgvector.django import CosineDistance

from ai.rag.models import Chunk
from tenants.models import Tenant
from tenants.scoping import tenant_scope

EF_SEARCH = 100


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: int
    title: str
    position: int
    text: str
    token_count: int
    score: float  # cosine similarity


def retrieve(*, tenant: Tenant, vector: np.ndarray, k: int = 5) -> list[RetrievedChunk]:
    with tenant_scope(tenant):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(EF_SEARCH)}")
        rows = (
            Chunk.objects.for_tenant(tenant)
            .annotate(distance=CosineDistance("embedding", np.asarray(vector, dtype=np.float32)))
            .order_by("distance")
            .values_list(
                "id", "document_id", "document__title", "position", "text", "token_count", "distance",
                "document__ingested_hash", "document__content_hash",
            )[:k]
        )  # fmt: skip
        return [
            RetrievedChunk(cid, did, title, pos, text, tokens, 1.0 - float(dist))
            for cid, did, title, pos, text, tokens, dist, made_from, current in rows
            if made_from == current
        ]
