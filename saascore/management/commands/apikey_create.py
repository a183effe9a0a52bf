import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.key_limits import api_key_limits_set, key_limits_clean
from tenants.commands import tenant_from_slug
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it (it is shown only once), with its own limits."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--models", help="comma-separated models the key may use (default: the tenant's)")
        parser.add_argument("--rpm", type=int, help="requests per minute (inside the tenant's)")
        parser.add_argument("--tpm", type=int, help="tokens per minute")
        parser.add_argument("--parallel", type=int, help="requests in parallel")
        parser.add_argument("--budget", help="spend limit in USD per --budget-period (inside the tenant's)")
        parser.add_argument("--budget-period", choices=["monthly", "daily"], default="monthly")
        parser.add_argument("--soft-alert", help="alert at this share of the budget (default 0.8)")
        parser.add_argument("--cache-controls", help="comma-separated cache controls it may send (default: all)")
        parser.add_argument("--metadata", help="a JSON object kept with the key")

    def handle(self, *args, tenant: str, name: str, **options):
        tenant_obj = tenant_from_slug(tenant)
        values = _limits(options)
        try:
            key_limits_clean(tenant=tenant_obj, values=values)  # before a key exists
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        api_key, key = api_key_create(tenant=tenant_obj, name=name)
        if values:
            api_key_limits_set(tenant=tenant_obj, key_id=api_key.pk, values=values)
        self.stdout.write(key)


def _limits(options: dict) -> dict:
    names = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "parallel": "max_parallel_requests",
             "budget": "budget_usd", "soft_alert": "soft_alert_ratio"}  # fmt: skip
    values = {field: options[option] for option, field in names.items() if options.get(option) is not None}
    if options.get("budget") is not None:
        values["budget_period"] = options["budget_period"]
    if options.get("models"):
        values["allowed_models"] = [m.strip() for m in options["models"].split(",") if m.strip()]
    if options.get("cache_controls") is not None:
        values["cache_controls"] = [c.strip() for c in options["cache_controls"].split(",") if c.strip()]
    if options.get("metadata"):
        try:
            values["metadata"] = json.loads(options["metadata"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--metadata is not JSON: {exc}") from None
    return values
