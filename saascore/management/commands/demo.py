from django.core.management.base import BaseCommand

from saascore.demo import credentials_path, demo_setup


class Command(BaseCommand):
    help = "Create (or refresh) the demo operator, tenants and API keys, and print them."

    def handle(self, *args, **options):
        credentials = demo_setup()
        admin = credentials.admin
        self.stdout.write(
            f"Admin:  http://127.0.0.1:8000/admin/  user {admin['username']}  password {admin['password']}"
        )
        for tenant in credentials.tenants:
            self.stdout.write(f"Tenant: {tenant['slug']:10} API key {tenant['api_key']}")
        self.stdout.write(f"(also in {credentials_path()})")
        first = credentials.tenants[0]["api_key"]
        self.stdout.write(
            f'Try:    curl -H "Authorization: Bearer {first}" -H "Content-Type: application/json" '
            """-d '{"query": "How do I reset my password?"}' http://127.0.0.1:8000/api/v1/ai/query"""
        )
