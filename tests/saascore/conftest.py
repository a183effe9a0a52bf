"""Fixtures of the API contract tests (test_api_fuzz.py, test_api_hostile_input.py)."""

import pytest

from ai.rag.models import Document
from ai.rag.services import documents_bulk_upsert
from billing.services import Usage, usage_record
from saascore.conf import ai_settings
from tenants.scoping import tenant_scope
from tests.factories import make_key, make_tenant

ANSWERED_REQUEST = "fixture-request-1"  # in the fixture tenant's ledger: feedback on it is valid
DOCUMENTS = [
    {"title": "Shipping", "content": "We ship every order within two working days.", "source": "kb/shipping"},
    {"title": "Refunds", "content": "Refunds reach your card within five days of the return.", "source": ""},
    {"title": "Support hours", "content": "Support answers from 9:00 to 17:00 UTC on weekdays.", "source": ""},
]


@pytest.fixture
def no_model_keys(monkeypatch):
    """No provider has credentials: every route ends at the local extractive model, no network."""
    for provider in ai_settings.PROVIDERS.values():
        monkeypatch.delenv(provider["api_key_env"], raising=False)


@pytest.fixture
def api(transactional_db, no_model_keys) -> dict:
    """A tenant with a few documents and an answered request: its API key, and path ids that exist
    for it (``key_id``: another key of the tenant, which the calling key may change)."""
    tenant = make_tenant()
    documents_bulk_upsert(tenant=tenant, rows=DOCUMENTS)
    _, key = make_key(tenant)
    other_key, _ = make_key(tenant, name="another")
    usage_record(tenant=tenant, usage=Usage(request_id=ANSWERED_REQUEST, source="llm", model="gpt-4o-mini"))
    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).order_by("pk").first()
    return {"key": key, "ids": {"document_id": document.pk, "key_id": other_key.pk}}
