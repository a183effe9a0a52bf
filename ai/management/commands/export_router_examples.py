import json

from django.core.management.base import BaseCommand

from ai.management.commands.load_router_examples import _tenant
from ai.router.io import router_examples_export


class Command(BaseCommand):
    help = "Print router examples as JSON lines (global, or one tenant's)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: global examples)")

    def handle(self, *args, tenant: str | None, **options):
        for row in router_examples_export(tenant=_tenant(tenant)):
            self.stdout.write(json.dumps(row))
