import json

from django.core.management.base import BaseCommand

from ai.router.io import router_examples_export
from tenants.commands import tenant_from_slug


class Command(BaseCommand):
    help = "Print router examples as JSON lines (global, or one tenant's)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: global examples)")

    def handle(self, *args, tenant: str | None, **options):
        for row in router_examples_export(tenant=tenant_from_slug(tenant)):
            self.stdout.write(json.dumps(row))
