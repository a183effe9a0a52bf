from datetime import UTC, datetime

import pytest

from billing.services import Usage, usage_record

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record(tenant, request_id, source="llm", when=NOW, **fields):
    return usage_record(tenant=tenant, usage=Usage(request_id=request_id, source=source, **fields), when=when)


@pytest.fixture
def ledger():
    """A few requests of every kind for a tenant, in November 2026."""
    from tests.factories import make_tenant

    def fill(tenant=None):
        tenant = tenant or make_tenant()
        record(tenant, "r1", model="gpt-4o-mini", input_tokens=1200, output_tokens=300)
        record(
            tenant, "r2", model="gpt-4o", input_tokens=2000, output_tokens=500, when=datetime(2026, 11, 21, tzinfo=UTC)
        )
        record(
            tenant, "r3", source="cache_exact", model="gpt-4o-mini", saved_input_tokens=1200, saved_output_tokens=300,
            cached_question="How do I reset my password?",
        )  # fmt: skip
        record(
            tenant, "r4", source="cache_semantic", model="gpt-4o", saved_input_tokens=2000, saved_output_tokens=500,
            cached_question="How do I reset my password?", embedding_model="text-embedding-3-small",
            embedding_tokens=12,
        )  # fmt: skip
        record(tenant, "r5", source="error", model="gpt-4o")
        record(
            tenant, "r6", model="claude-3-haiku", input_tokens=800, output_tokens=200, router_model="gpt-4o-mini",
            router_input_tokens=400, router_output_tokens=20,
        )  # fmt: skip
        return tenant

    return fill
