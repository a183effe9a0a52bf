"""A tenant's documents and their chunks, with embeddings in pgvector."""

import hashlib

from django.db import models
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

from tenants.scoping import TenantOwnedModel

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2; a different embedder needs a migration of this column


def content_hash(title: str, content: str) -> str:
    return hashlib.sha256(f"{title}\x1f{content}".encode()).hexdigest()


class Document(TenantOwnedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    title = models.CharField(max_length=300)
    source = models.CharField(max_length=1000, blank=True)
    content = models.TextField()
    content_hash = models.CharField(max_length=64, editable=False)
    # The hash the current chunks were made from: re-ingesting it again does nothing.
    ingested_hash = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=500, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-updated_at"], name="document_tenant_updated_idx")]
        constraints = [models.UniqueConstraint(fields=["tenant", "title"], name="document_tenant_title_uniq")]

    def __str__(self) -> str:
        return self.title


class Chunk(TenantOwnedModel):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIM)
    embedder_id = models.CharField(max_length=120)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "document", "position"], name="chunk_tenant_doc_pos_idx"),
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]
