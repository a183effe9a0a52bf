"""The model catalog: which models exist, who provides them, and their prices.

Billing prices requests with it; the router and the generation step choose
among its models. It depends on no app but the core and tenants' audit trail.
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from tenants.audit import AuditedHistory, AuditRecord

MILLION = Decimal(1_000_000)


class ModelPrice(models.Model):
    """USD per million tokens for a model, from `effective_from` until the next price.

    A price change is a new row: requests are priced at the row in force when
    they ran, so history is never rewritten.
    """

    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        LOCAL = "local", "Local (no network)"

    provider = models.CharField(max_length=32, choices=Provider.choices)
    model = models.CharField(max_length=100)
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    effective_from = models.DateTimeField(default=timezone.now)

    history = AuditedHistory(base=AuditRecord, excluded_fields=[], verbose_name="model price change")

    class Meta:
        db_table = "billing_modelprice"  # born in billing; the table keeps its name
        ordering = ["model", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["model", "effective_from"], name="modelprice_model_from_uniq")]

    def __str__(self) -> str:
        return f"{self.model}: ${self.input_per_million}/${self.output_per_million} per 1M tokens"

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (self.input_per_million * input_tokens + self.output_per_million * output_tokens) / MILLION
