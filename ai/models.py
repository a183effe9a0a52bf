"""The ai app's models live beside the code that uses them; Django finds them here."""

from ai.cache.models import PendingInvalidation
from ai.rag.models import Chunk, Document
from ai.router.models import RouterExample, RouteRule
from ai.tenant_settings.models import TenantAISettings, TenantSettingsChange
from ai.verifier.models import LabelledPair, VerifierModel

__all__ = [
    "Chunk",
    "Document",
    "LabelledPair",
    "PendingInvalidation",
    "RouteRule",
    "RouterExample",
    "TenantAISettings",
    "TenantSettingsChange",
    "VerifierModel",
]
