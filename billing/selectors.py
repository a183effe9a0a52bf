from datetime import datetime

from django.utils import timezone

from billing.models import ModelPrice


def model_names() -> set[str]:
    return set(ModelPrice.objects.values_list("model", flat=True).distinct())


def price_at(*, model: str, when: datetime | None = None) -> ModelPrice | None:
    """The price in force for ``model`` at ``when`` (default: now)."""
    return (
        ModelPrice.objects.filter(model=model, effective_from__lte=when or timezone.now())
        .order_by("-effective_from")
        .first()
    )
