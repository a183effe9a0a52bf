"""An API key's own limits, its usage by key, end user and tag, and its tenant's walls: real
PostgreSQL and Redis, the real pipeline; the remote model is the local OpenAI-compatible server.
(Tenants here have no documents: their questions are answered without retrieval.)"""

from decimal import Decimal

import pytest

from billing.key_limits import api_key_limits_set
from billing.models import KeySpendCounter, UsageRecord
from billing.selectors import month_to_date, usage_series
from tenants.scoping import tenant_scope
from tests.factories import auth, make_key, make_tenant
from tests.reliability.world import committed, route_everything, set_budget, starter_router

pytestmark = pytest.mark.django_db(transaction=True)
QUESTION = "How do I get a refund?"


@pytest.fixture
def tenant(upstream):
    starter_router()
    tenant = make_tenant()
    route_everything(tenant, "gpt-4o-mini")
    return tenant


def ask(client, key: str, query: str = QUESTION, headers: dict | None = None, **fields):
    return client.post("/api/v1/ai/query", {"query": query, "cache": "bypass", **fields}, format="json",
                       **auth(key), **(headers or {}))  # fmt: skip


def chat(client, key: str, model: str = "auto", **fields):
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "cache": {"no-cache": True,
            "no-store": True}, **fields}  # fmt: skip
    return client.post("/v1/chat/completions", body, format="json", **auth(key))


def rows(tenant) -> list[UsageRecord]:
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant).order_by("created_at"))


def test_every_answer_carries_openai_rate_limit_headers_and_a_refusal_names_its_limit(api_client, tenant, upstream):
    api_key, key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"requests_per_minute": 2})
    first = ask(api_client, key)
    assert first.status_code == 200, first.content
    assert first["x-ratelimit-limit-requests"] == "2" and first["x-ratelimit-remaining-requests"] == "1"
    assert first["x-ratelimit-reset-requests"].endswith("s")
    assert ask(api_client, key)["x-ratelimit-remaining-requests"] == "0"
    refused = ask(api_client, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert (error["details"]["limit"], error["details"]["scope"]) == ("requests_per_minute", "key")
    assert 0 < int(refused["Retry-After"]) <= 60 and refused["x-ratelimit-remaining-requests"] == "0"
    other_key = make_key(tenant)[1]  # the tenant's limit (600) is not reached: another key answers
    assert ask(api_client, other_key)["x-ratelimit-limit-requests"] == "600"


def test_tokens_per_minute_are_counted_from_real_usage(api_client, tenant, upstream):
    api_key, key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"tokens_per_minute": 200})
    upstream.reply(content="Refunds take 14 days.", usage=(120, 11))
    first = ask(api_client, key)
    assert first.status_code == 200, first.content
    assert first["x-ratelimit-limit-tokens"] == "200" and first["x-ratelimit-remaining-tokens"] == "69"
    upstream.reply(content="Refunds take 14 days.", usage=(120, 11))
    second = ask(api_client, key)  # 69 tokens left: admitted, and it uses 131
    assert second.status_code == 200 and second["x-ratelimit-remaining-tokens"] == "0"
    refused = ask(api_client, key)
    assert refused.status_code == 429, refused.content
    assert refused.json()["error"]["details"]["limit"] == "tokens_per_minute"
    assert sum(r.input_tokens + r.output_tokens for r in rows(tenant)) == 262


def test_a_key_is_refused_a_model_it_may_not_use(api_client, tenant, upstream):
    api_key, key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"allowed_models": ["gpt-4o"]})
    named = chat(api_client, key, model="gpt-4o-mini")
    assert named.status_code == 403 and named.json()["error"]["code"] == "model_not_allowed", named.content
    routed = ask(api_client, key)  # the route is gpt-4o-mini (then the local model): none is the key's
    assert routed.status_code == 403 and routed.json()["error"]["code"] == "model_not_allowed"
    assert rows(tenant) == [] and upstream.chat_requests() == []
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"allowed_models": ["gpt-4o-mini"]})
    assert chat(api_client, key, model="gpt-4o-mini").status_code == 200


def test_a_key_may_use_only_the_cache_controls_it_was_given(api_client, tenant, upstream):
    api_key, key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"cache_controls": ["no-cache"]})
    refused = ask(api_client, key)  # "bypass": no-cache and no-store
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cache_control_not_allowed"
    assert refused.json()["error"]["details"]["refused"] == ["no-store"]
    on_v1 = chat(api_client, key)
    assert on_v1.status_code == 403 and on_v1.json()["error"]["code"] == "cache_control_not_allowed"
    assert ask(api_client, key, cache="refresh").status_code == 200  # no-cache alone


def test_usage_records_key_end_user_and_tags_and_spend_per_key_sums_to_the_tenants(api_client, tenant, upstream):
    set_budget(tenant, monthly_spend_limit=Decimal("100"))
    (first_key, first), (second_key, second) = make_key(tenant, name="web"), make_key(tenant, name="batch")
    api_key_limits_set(tenant=tenant, key_id=second_key.pk, values={"budget_usd": "5"})
    for _ in range(3):
        upstream.reply(content="Refunds take 14 days.", usage=(1000, 200))
    assert ask(api_client, first, user_id="u-1", headers={"HTTP_X_SAASCORE_TAGS": "web, eu"}).status_code == 200
    assert ask(api_client, second, user_id="u-2", metadata={"tags": ["batch"]}).status_code == 200
    assert chat(api_client, second, user="u-2", metadata={"tags": "batch,eu"}).status_code == 200
    ledger = rows(tenant)
    assert [(r.api_key_id, r.end_user, r.tags) for r in ledger] == [
        (first_key.pk, "u-1", ["web", "eu"]),
        (second_key.pk, "u-2", ["batch"]),
        (second_key.pk, "u-2", ["batch", "eu"]),
    ]
    start, end = month_to_date()
    by_key = {row["label"]: row for row in usage_series(tenant=tenant, start=start, end=end, group_by="key")}
    assert set(by_key) == {"web", "batch"} and by_key["batch"]["requests"] == 2
    assert sum(row["cost"] for row in by_key.values()) == committed(tenant) == sum(r.cost for r in ledger) > 0
    with tenant_scope(tenant):
        counters = dict(KeySpendCounter.objects.for_tenant(tenant).values_list("period", "committed"))
    assert len(counters) == 2 and set(counters.values()) == {by_key["batch"]["cost"]}  # month and day
    tags = {row["key"]: row["requests"] for row in usage_series(tenant=tenant, start=start, end=end, group_by="tag")}
    assert tags == {"web": 1, "eu": 2, "batch": 2}
    users = api_client.get("/api/v1/billing/usage?group_by=user", **auth(first)).json()
    assert {row["key"]: row["requests"] for row in users} == {"u-1": 1, "u-2": 2}


def test_bad_tags_are_a_400_naming_the_field(api_client, tenant):
    key = make_key(tenant)[1]
    for headers, fields, field in [
        ({"HTTP_X_SAASCORE_TAGS": "ok,=cmd()"}, {}, "x-saascore-tags"),
        ({}, {"metadata": {"tags": [f"t{n}" for n in range(11)]}}, "metadata.tags"),
        ({}, {"metadata": {"tags": ["x" * 65]}}, "metadata.tags"),
        ({}, {"metadata": "tags"}, "metadata"),
    ]:
        refused = ask(api_client, key, headers=headers, **fields)
        assert refused.status_code == 400 and field in refused.json()["error"]["details"], refused.content


def test_a_key_budget_refuses_with_402_naming_the_key(api_client, tenant, upstream):
    api_key, key = make_key(tenant)
    set_budget(tenant, max_request_cost=Decimal("0.01"))
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"budget_usd": "0.005", "budget_period": "daily"})
    refused = ask(api_client, key)  # a miss reserves 0.01, over the key's 0.005
    assert refused.status_code == 402, refused.content
    details = refused.json()["error"]["details"]
    assert (details["limit"], details["scope"], details["api_key_id"]) == ("daily_key_budget", "key", api_key.pk)
    assert int(refused["Retry-After"]) <= 86400


def test_a_key_of_tenant_a_can_never_limit_or_see_tenant_bs(api_client, tenant, upstream):
    other = make_tenant()
    theirs, their_key = make_key(other)
    mine, my_key = make_key(tenant)
    manager = make_key(tenant)[1]
    for method in ("get", "patch"):
        answer = getattr(api_client, method)(f"/api/v1/keys/{theirs.pk}/limits", {"requests_per_minute": 1},
                                             format="json", **auth(manager))  # fmt: skip
        assert answer.status_code == 404, answer.content
    upstream.reply(content="Refunds take 14 days.")
    assert ask(api_client, their_key).status_code == 200
    usage = api_client.get("/api/v1/billing/usage?group_by=key", **auth(manager)).json()
    assert usage == []  # the other tenant's usage is not this tenant's
    own = api_client.patch(f"/api/v1/keys/{mine.pk}/limits", {"requests_per_minute": 5}, format="json", **auth(my_key))
    assert own.status_code == 403  # a key never lifts (or sets) its own limits
    over = api_client.patch(f"/api/v1/keys/{mine.pk}/limits", {"requests_per_minute": 601}, format="json",
                            **auth(manager))  # fmt: skip
    assert over.status_code == 400 and "requests_per_minute" in over.json()["error"]["details"]
    done = api_client.patch(f"/api/v1/keys/{mine.pk}/limits", {"requests_per_minute": 5}, format="json",
                            **auth(manager))  # fmt: skip
    assert done.status_code == 200 and done.json()["requests_per_minute"] == 5


def test_embeddings_obey_the_keys_limits_and_record_the_key(api_client, tenant):
    api_key, key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"requests_per_minute": 1})

    def embed(key, **fields):
        body = {"model": "auto", "input": "How do I get a refund?", **fields}
        return api_client.post("/v1/embeddings", body, format="json", **auth(key))

    first = embed(key, metadata={"tags": ["search"]})
    assert first.status_code == 200, first.content
    assert first["x-ratelimit-limit-requests"] == "1" and first["x-ratelimit-remaining-requests"] == "0"
    refused = embed(key)
    assert refused.status_code == 429 and refused["Retry-After"]
    (row,) = [r for r in rows(tenant) if r.source == "embedding"]
    assert row.api_key_id == api_key.pk and row.tags == ["search"]

    limited, limited_key = make_key(tenant)
    api_key_limits_set(tenant=tenant, key_id=limited.pk, values={"allowed_models": ["gpt-4o-mini"]})
    assert embed(limited_key).status_code == 403  # its models do not include the embedder
