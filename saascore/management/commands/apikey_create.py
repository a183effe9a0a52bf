from django.core.management.base import BaseCommand

from tenants.commands import tenant_from_slug
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, tenant: str, name: str, **options):
        tenant_obj = tenant_from_slug(tenant)
        _, key = api_key_create(tenant=tenant_obj, name=name)
        self.stdout.write(key)
