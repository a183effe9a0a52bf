"""The model catalog's starting prices (USD per million tokens), seeded by migration."""

from datetime import UTC, datetime
from decimal import Decimal

from catalog.models import ModelPrice

SEED_FROM = datetime(2024, 1, 1, tzinfo=UTC)
SEED_PRICES = [
    ("openai", "gpt-4o", "5.00", "15.00"),
    ("openai", "gpt-4o-mini", "0.15", "0.60"),
    ("anthropic", "claude-3-haiku", "0.25", "1.25"),
    ("openai", "text-embedding-3-small", "0.02", "0"),
    ("local", "local-extractive", "0", "0"),
    ("local", "local:all-minilm-l6-v2", "0", "0"),
]


def catalog_seed(model=None, using: str = "default") -> None:
    """Create the seed prices that are missing (idempotent). ``model``: a historical model in migrations."""
    model = model or ModelPrice
    for provider, name, input_price, output_price in SEED_PRICES:
        model.objects.using(using).get_or_create(
            model=name,
            effective_from=SEED_FROM,
            defaults={
                "provider": provider,
                "input_per_million": Decimal(input_price),
                "output_per_million": Decimal(output_price),
            },
        )
