"""Reads of the model catalog, cached per process for ``AI["ROW_CACHE_SECONDS"]``."""

from datetime import datetime

from django.utils import timezone

from catalog.models import ModelPrice
from saascore.conf import ai_settings
from saascore.ttl import TTLCache


def model_names() -> set[str]:
    return set(ModelPrice.objects.values_list("model", flat=True).distinct())


async def amodel_names() -> frozenset[str]:
    """Every model the catalog prices, read once per ``AI["ROW_CACHE_SECONDS"]`` per process."""
    return await _names.aget("all", lambda: frozenset(model_names()))


def price_at(*, model: str, when: datetime | None = None) -> ModelPrice | None:
    """The price in force for ``model`` at ``when`` (default: now)."""
    when = when or timezone.now()
    return next((price for price in _prices_of(model) if price.effective_from <= when), None)


async def aprice_at(*, model: str, when: datetime | None = None) -> ModelPrice | None:
    """``price_at`` for async callers: a price this process has not read yet is read off the loop."""
    when = when or timezone.now()
    prices = await _prices.aget(model, lambda: _load(model))
    return next((price for price in prices if price.effective_from <= when), None)


def _load(model: str) -> list[ModelPrice]:
    return list(ModelPrice.objects.filter(model=model).order_by("-effective_from"))


def _prices_of(model: str) -> list[ModelPrice]:
    """The model's prices, newest first."""
    return _prices.get(model, lambda: _load(model))


_prices = TTLCache("model-prices", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(ModelPrice)
_names = TTLCache("model-names", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(ModelPrice)
