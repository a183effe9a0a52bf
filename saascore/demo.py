"""The demo data of ``make run``: an operator, two tenants, one API key each.

Idempotent: a second run keeps the credentials in var/demo-credentials.json
when they still work, and replaces those that do not.
"""

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from tenants.models import Tenant
from tenants.services import api_key_create, api_key_verify, tenant_create

ADMIN_USERNAME = "admin"
DEMO_DIR = Path(__file__).resolve().parent.parent / "ai" / "rag" / "demo"
DEMO_TENANTS = [
    {"slug": "demo", "name": "Acme Cloud (demo)", "plan": Tenant.Plan.PRO},
    {"slug": "demo-bank", "name": "Northwind Bank (demo)", "plan": Tenant.Plan.ENTERPRISE},
]
DEMO_DOCUMENTS = {"demo": "acme_help_centre.jsonl", "demo-bank": "northwind_bank_faq.jsonl"}


@dataclass
class DemoCredentials:
    admin: dict
    tenants: list[dict]

    def as_dict(self) -> dict:
        return {"admin": self.admin, "tenants": self.tenants}


def credentials_path() -> Path:
    return Path(settings.DEMO_CREDENTIALS_FILE)


def _previous() -> dict:
    path = credentials_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _admin(previous: dict) -> dict:
    password = previous.get("admin", {}).get("password") or secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username=ADMIN_USERNAME, defaults={"email": "admin@example.com"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return {"username": ADMIN_USERNAME, "password": password}


def _documents(tenant: Tenant) -> None:
    """The tenant's demo documents, ingested now (no worker needed for the demo)."""
    from ai.rag.ingestion import document_ingest
    from ai.rag.models import Document
    from ai.rag.services import documents_bulk_upsert
    from tenants.scoping import tenant_scope

    rows = [json.loads(line) for line in (DEMO_DIR / DEMO_DOCUMENTS[tenant.slug]).read_text().splitlines() if line]
    documents_bulk_upsert(tenant=tenant, rows=rows)
    with tenant_scope(tenant):
        ids = list(Document.objects.for_tenant(tenant).values_list("id", flat=True))
    for document_id in ids:
        document_ingest(tenant_id=tenant.pk, document_id=document_id)


def _tenant(spec: dict, previous_keys: dict[str, str]) -> dict:
    tenant = Tenant.objects.filter(slug=spec["slug"]).first() or tenant_create(**spec)
    _documents(tenant)
    key = previous_keys.get(tenant.slug)
    if not key or api_key_verify(key=key) is None:
        _, key = api_key_create(tenant=tenant, name="demo")
    return {"slug": tenant.slug, "name": tenant.name, "api_key": key}


def demo_setup() -> DemoCredentials:
    from ai.router.io import starter_examples_ensure

    starter_examples_ensure()
    previous = _previous()
    previous_keys = {t["slug"]: t.get("api_key", "") for t in previous.get("tenants", [])}
    credentials = DemoCredentials(
        admin=_admin(previous), tenants=[_tenant(spec, previous_keys) for spec in DEMO_TENANTS]
    )
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(credentials.as_dict(), indent=2) + "\n")
    path.chmod(0o600)
    return credentials
