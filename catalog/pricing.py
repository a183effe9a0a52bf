"""Prices of token counts, in Decimal USD at the price in force at a given time."""

import logging
from datetime import datetime
from decimal import Decimal

from catalog.models import ModelPrice
from catalog.selectors import aprice_at, price_at

logger = logging.getLogger("saascore.billing")
ZERO = Decimal(0)


def cost_of(model: str, input_tokens: int, output_tokens: int, when: datetime | None = None) -> Decimal:
    if not model or not (input_tokens or output_tokens):
        return ZERO
    return _cost(model, price_at(model=model, when=when), input_tokens, output_tokens)


async def acost_of(model: str, input_tokens: int, output_tokens: int, when: datetime | None = None) -> Decimal:
    """``cost_of`` for async callers: a price this process has not read yet is read off the loop."""
    if not model or not (input_tokens or output_tokens):
        return ZERO
    return _cost(model, await aprice_at(model=model, when=when), input_tokens, output_tokens)


def _cost(model: str, price: ModelPrice | None, input_tokens: int, output_tokens: int) -> Decimal:
    if price is None:
        logger.error("no price for model %r: billed at $0; add it to the catalog", model)
        return ZERO
    return price.cost(input_tokens, output_tokens)
