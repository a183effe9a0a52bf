from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, tenant: str, name: str, **options):
        try:
            tenant_obj = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with slug {tenant!r}.") from None
        _, key = api_key_create(tenant=tenant_obj, name=name)
        self.stdout.write(key)
