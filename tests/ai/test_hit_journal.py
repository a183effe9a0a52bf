"""A served cache hit answers before its ledger row's commit (billing/journal.py); a worker that
stops commits the rows it holds and leaves no journal behind, and the hits it answered are in
the ledger once each."""

import json

from billing.models import UsageRecord
from tenants.scoping import tenant_scope
from tests.serving import http, served

QUESTION = "How do I reset my password?"


def test_a_stopping_worker_commits_its_hits_rows_and_removes_its_journal(helpdesk, tmp_path):
    tenant, key = helpdesk()
    spool = tmp_path / "spool"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    answered = []
    with served(workers=1, BILLING_SPOOL_DIR=str(spool)) as server:
        for _ in range(20):
            status, response_headers, body = http(
                "POST", f"{server.base}/api/v1/ai/query", headers, json.dumps({"query": QUESTION}).encode()
            )
            assert status == 200, body
            answered.append((response_headers["X-Cache"], body["request_id"]))
        assert len(list(spool.glob("usage-*-journal-*.jsonl"))) == 1  # the worker's journal, while it serves
    with tenant_scope(tenant):
        billed = dict(UsageRecord.objects.for_tenant(tenant).values_list("request_id", "source"))
    assert [state for state, _ in answered] == ["MISS"] + ["HIT-EXACT"] * 19
    assert billed == {request: "llm" if state == "MISS" else "cache_exact" for state, request in answered}
    assert list(spool.iterdir()) == [], "\n".join(server.lines[-20:])  # nothing left for a drain
