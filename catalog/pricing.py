"""Prices of token counts, in Decimal USD at the price in force at a given time."""

import logging
from datetime import datetime
from decimal import Decimal

from catalog.selectors import price_at

logger = logging.getLogger("saascore.billing")
ZERO = Decimal(0)


def cost_of(model: str, input_tokens: int, output_tokens: int, when: datetime | None = None) -> Decimal:
    if not model or not (input_tokens or output_tokens):
        return ZERO
    price = price_at(model=model, when=when)
    if price is None:
        logger.error("no price for model %r: billed at $0; add it to the catalog", model)
        return ZERO
    return price.cost(input_tokens, output_tokens)
