"""The query endpoint against a clumsy client and an attacker (issue 12): whose ids key the
ledger, what an Idempotency-Key may replay, long pastes, per-user caches without a user,
contact details from the tenant's own documents, and what a request may spend."""

import asyncio
import json
import threading
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import ai.pipeline
import ai.streaming
from ai.api.idempotency import idempotency_begin
from ai.cache import get_cache
from ai.llm.generate import prompt_estimate
from ai.tenant_settings.models import TenantAISettings
from billing.key_limits import api_key_limits_set
from billing.models import SpendCounter, SpendReservation, TenantBudget, UsageRecord
from billing.services import period_of
from saascore import metrics
from saascore.pools import in_db
from saascore.redis import keys
from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tests.factories import auth, make_key

PASSWORD = "How do I reset my password?"


def ask(client, key, query, headers=None, **fields):
    return client.post("/api/v1/ai/query", {"query": query, **fields}, format="json", **auth(key), **(headers or {}))


def rows(tenant) -> list[tuple[str, str]]:
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant).order_by("id").values_list("request_id", "source"))


# -- item 1: whose id keys the ledger --------------------------------------------------------


def test_a_callers_request_id_never_makes_a_second_request_free(api_client, helpdesk):
    tenant, key = helpdesk()
    same = {"HTTP_X_REQUEST_ID": "my-retry-id-1"}
    first = ask(api_client, key, PASSWORD, same)
    second = ask(api_client, key, "What are your support hours?", same)
    assert first.json()["source"] == second.json()["source"] == "llm"
    assert first["X-Client-Request-Id"] == second["X-Client-Request-Id"] == "my-retry-id-1"
    assert first.json()["request_id"] != second.json()["request_id"]
    assert rows(tenant) == [(first.json()["request_id"], "llm"), (second.json()["request_id"], "llm")]


def test_a_long_request_id_is_a_correlation_id_and_the_answer_is_billed(api_client, helpdesk):
    tenant, key = helpdesk()
    response = ask(api_client, key, PASSWORD, {"HTTP_X_REQUEST_ID": "r" * 100})
    assert response.status_code == 200 and response["X-Client-Request-Id"] == "r" * 100
    assert rows(tenant) == [(response.json()["request_id"], "llm")]
    refused = ask(api_client, key, "What are your support hours?", {"HTTP_X_REQUEST_ID": "r" * 129})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request_id"
    assert len(rows(tenant)) == 1  # refused before anything ran


def test_an_idempotency_key_is_scoped_to_the_api_key_and_bound_to_its_body(api_client, helpdesk):
    tenant, key = helpdesk()
    _, other_key = make_key(tenant, name="second app")
    header = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = ask(api_client, key, PASSWORD, header)
    replay = ask(api_client, key, PASSWORD, header)
    assert replay["Idempotent-Replay"] == "true" and replay.json() == first.json()

    reused = ask(api_client, key, "What are your support hours?", header)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    user_scoped = ask(api_client, key, PASSWORD, header, user_id="alice")  # another user: another request
    assert user_scoped.status_code == 200 and "Idempotent-Replay" not in user_scoped

    other_app = ask(api_client, other_key, PASSWORD, header)  # another API key's same header: its own request
    assert other_app.status_code == 200 and "Idempotent-Replay" not in other_app
    assert other_app.json()["request_id"] != first.json()["request_id"]
    sources = [source for _, source in rows(tenant)]
    assert len(sources) == 3 and sources[0] == "llm"  # the first, the user's and the other app's: billed once each


def test_a_request_run_again_once_redis_forgot_its_key_is_billed_again(api_client, helpdesk, upstream, settings):
    """After the 24 h of replay (or a claim a killed worker left pending) the same key and body
    run again: that run is answered, so it is billed, under its own id."""
    tenant, key = helpdesk()
    header = {"HTTP_IDEMPOTENCY_KEY": "order-44"}
    first = ask(api_client, key, PASSWORD, header, cache="bypass")
    client = redis.Redis.from_url(settings.REDIS_URL)
    forgotten = client.delete(*client.keys(keys.idempotency_key(tenant.pk, "*")))
    assert forgotten == 1  # as its time to live would
    again = ask(api_client, key, PASSWORD, header, cache="bypass")
    assert again.status_code == 200 and "Idempotent-Replay" not in again
    assert rows(tenant) == [(first.json()["request_id"], "llm"), (again.json()["request_id"], "llm")]
    with tenant_scope(tenant):
        costs = list(UsageRecord.objects.for_tenant(tenant).values_list("cost", flat=True))
    assert len(costs) == 2 and all(cost > 0 for cost in costs)


def test_another_tenants_embeddings_never_tell_what_this_tenants_users_asked(api_client, helpdesk):
    """The embedding memo is per tenant: a text memoised for another tenant counts its tokens."""
    _, asker = helpdesk()
    prober_tenant, prober = helpdesk()
    secret = "Has the mortgage of Jane Example been approved yet?"
    assert ask(api_client, asker, secret).status_code == 200  # embedded (and memoised) for its tenant

    def probe(text: str) -> int:
        response = api_client.post(
            "/v1/embeddings", {"model": "auto", "input": text}, content_type="application/json",
            headers={"Authorization": f"Bearer {prober}"},
        )  # fmt: skip
        assert response.status_code == 200, response.content
        return response.json()["usage"]["prompt_tokens"]

    assert probe(secret) == probe("Has the mortgage of Jane Example been refused yet?") > 0
    with tenant_scope(prober_tenant):
        billed = list(UsageRecord.objects.for_tenant(prober_tenant).values_list("embedding_tokens", flat=True))
    assert len(billed) == 2 and billed[0] > 0


def test_a_retry_while_the_first_request_runs_is_told_to_wait(api_client, helpdesk):
    tenant, key = helpdesk()
    with tenant_scope(tenant):
        api_key = ApiKey.objects.for_tenant(tenant).get()
    # The first request with this key is running (it claimed the key and has not answered).
    idempotency_begin(
        get_cache().guard, tenant_id=tenant.pk, api_key_id=api_key.pk, user_id=None, key="k-1",
        request={"query": PASSWORD, "cache": "auto"}, ttl=60,
    )  # fmt: skip
    retry = ask(api_client, key, PASSWORD, {"HTTP_IDEMPOTENCY_KEY": "k-1"})
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotency_in_flight"
    assert int(retry["Retry-After"]) >= 1 and rows(tenant) == []


def test_a_failed_idempotent_request_can_be_retried_and_is_billed_when_it_answers(api_client, helpdesk, upstream):
    tenant, key = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, local_fallback=False)
    upstream.default.status = 503
    header = {"HTTP_IDEMPOTENCY_KEY": "order-43"}
    assert ask(api_client, key, PASSWORD, header).status_code == 502
    upstream.default.status = 200
    upstream.default.content = "Use the Forgot password link."
    retried = ask(api_client, key, PASSWORD, header)
    assert retried.status_code == 200 and "Idempotent-Replay" not in retried
    assert [source for _, source in rows(tenant)] == ["error", "llm"]


# -- item 5: a query the embedder cannot see whole ---------------------------------------------

# A user pastes a page of the help centre (past the embedder's 256-token window), then asks.
PASTE = " ".join(
    [
        "I read your help page on my account and billing settings and I am still confused.",
        *[f"Section {n}: my workspace plan, invoices, seats, password and sign-in settings." for n in range(40)],
    ]
)


def test_two_long_pastes_that_differ_only_at_the_end_never_share_an_answer(api_client, helpdesk):
    _, key = helpdesk()
    first = ask(api_client, key, f"{PASTE} Question: how do I reset my password?")
    second = ask(api_client, key, f"{PASTE} Question: how do I export my data?")
    assert first.json()["source"] == "llm"
    assert second.json()["source"] == "llm" and second["X-Cache"] == "MISS", second.json()["cache"]
    again = ask(api_client, key, f"{PASTE} Question: how do I reset my password?")
    assert again["X-Cache"] == "HIT-EXACT"  # an exact repeat is still served


# -- item 6: a per-user cache without a user ----------------------------------------------------------


def test_a_per_user_cache_without_a_user_id_is_refused(api_client, helpdesk):
    tenant, key = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, cache_scope="user")
    refused = ask(api_client, key, PASSWORD)
    assert refused.status_code == 400 and "user_id" in refused.json()["error"]["details"]
    assert rows(tenant) == []
    alice = ask(api_client, key, PASSWORD, user_id="alice")
    bob = ask(api_client, key, PASSWORD, user_id="bob")
    assert alice["X-Cache"] == "MISS" and bob["X-Cache"] == "MISS"  # one user's answers are not another's
    assert ask(api_client, key, PASSWORD, user_id="alice")["X-Cache"] == "HIT-EXACT"


# -- item 11: contact details from the tenant's own documents -------------------------------------------


def test_an_answer_repeating_the_tenants_own_contact_details_is_cached(api_client, helpdesk):
    _, key = helpdesk()
    query = "Whom should a workspace owner contact to request a refund?"
    first = ask(api_client, key, query).json()
    assert "billing@acme.example" in first["response"], first["response"]
    assert first["cache"]["stored"] == "stored"
    assert ask(api_client, key, query)["X-Cache"] == "HIT-EXACT"


def test_personal_data_the_sources_do_not_contain_still_blocks_caching(api_client, helpdesk, upstream):
    _, key = helpdesk()
    upstream.reply(content="Email our agent at dana.smith@gmail.com or billing@acme.example to get a refund.")
    first = ask(api_client, key, "How do I request a refund for my annual plan?").json()
    assert first["cache"]["stored"] == "not_cached:personal_data"
    query_with_email = ask(api_client, key, "I am jo@example.org: how do I request a refund?").json()
    assert query_with_email["cache"]["stored"] == "bypass"


# -- item 4: a request spends no more than it reserved --------------------------------------------------


def _budget(tenant, **fields) -> None:
    with tenant_scope(tenant):
        TenantBudget.objects.for_tenant(tenant).update_or_create(tenant=tenant, defaults=fields)


def test_generation_is_capped_to_the_requests_reservation(api_client, helpdesk, upstream):
    tenant, key = helpdesk()
    cap = Decimal("0.0004")
    _budget(tenant, max_request_cost=cap, monthly_spend_limit=Decimal("5"))
    upstream.default.usage = (200, 100_000)  # a model that would talk forever
    body = ask(api_client, key, PASSWORD).json()
    (request,) = upstream.chat_requests()
    assert 32 <= request["body"]["max_tokens"] < 500
    assert body["model_used"] != "local-extractive" and Decimal(body["usage"]["cost_usd"]) <= cap


def test_a_model_whose_prompt_alone_passes_the_reservation_is_skipped(api_client, helpdesk, upstream):
    tenant, key = helpdesk()
    _budget(tenant, max_request_cost=Decimal("0"))
    body = ask(api_client, key, PASSWORD).json()
    assert upstream.chat_requests() == []  # no paid call at all
    assert body["model_used"] == "local-extractive" and Decimal(body["usage"]["cost_usd"]) == 0


def test_a_pasted_blob_counts_as_a_providers_tokenizer_would_count_it(api_client, helpdesk, upstream):
    """Our tokenizer makes one [UNK] of a word past 100 characters: a 100,000-character blob in
    the history counted as one token, and a paid model was asked with the full output cap."""
    blob = "".join(f"{n:x}" for n in range(40_000))[:100_000]  # hex digits: no spaces
    assert prompt_estimate(PASSWORD, [], ({"role": "user", "content": blob},)) >= 50_000
    english = ({"role": "user", "content": "I asked about my invoices and my seats last week. " * 50},)
    assert prompt_estimate(PASSWORD, [], english) < 1_000  # ordinary words count as before
    tenant, key = helpdesk()
    _budget(tenant, max_request_cost=Decimal("0.001"))
    messages = [{"role": "user", "content": blob}, {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": PASSWORD}]  # fmt: skip
    answered = api_client.post(
        "/v1/chat/completions", {"model": "auto", "messages": messages}, content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert answered.status_code == 200, answered.content
    assert upstream.chat_requests() == []  # the prompt alone passes the request's cost limit
    assert answered.json()["model"] == "local-extractive"


# -- item 8: single flight holds for as long as the leader's chain -----------------------------------


def test_fifty_identical_cold_queries_make_only_the_leaders_upstream_calls(helpdesk, upstream, settings):
    """The upstream outlasts the followers' old wait (LLM_TIMEOUT) and the leader's old lock: every
    attempt of the leader times out, it falls back along its chain to the local model, and the 49
    followers wait for it instead of each going upstream."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from rest_framework.test import APIClient

    settings.AI = {**settings.AI, "LLM_TIMEOUT": 1.0, "LLM_MAX_RETRIES": 1, "SINGLE_FLIGHT_LOCK_TTL": 2.0}
    upstream.default.delay = 1.5  # longer than a call's timeout: each attempt fails
    _, key = helpdesk()
    start = threading.Barrier(50)

    def one(_):
        start.wait()
        try:
            return ask(APIClient(), key, PASSWORD).json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(one, range(50)))
    leader_attempts = 2 * 2  # two paid models of the route, two attempts each, all timed out
    assert len(upstream.chat_requests()) == leader_attempts
    assert len({a["response"] for a in answers}) == 1 and answers[0]["model_used"] == "local-extractive"
    assert sorted(a["source"] for a in answers).count("llm") == 1


def test_a_single_flight_follower_is_billed_the_llm_routers_tokens_too(api_client, helpdesk, upstream):
    """Issue 13: the follower's usage was merged by hand and left the router's call out."""
    from ai.cache.entries import CacheEntry
    from ai.cache.keys import CacheScope
    from ai.embeddings import get_embedder

    tenant, key = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, router_mode="llm")
    verdict = '{"intent": "retrieval", "complexity": "low", "cache_strategy": "standard", "confidence": 0.95}'
    upstream.default.content, upstream.default.usage = verdict, (321, 17)
    cache, scope = get_cache(), CacheScope(tenant.pk, get_embedder().id)
    leader = cache.take_off(scope, PASSWORD)  # another request leads this question
    assert leader.leader
    following = metrics.CACHE_SINGLE_FLIGHT.labels(outcome="follower")
    before = following._value.get()
    answers = []
    follower = threading.Thread(target=lambda: answers.append(ask(api_client, key, PASSWORD)))
    follower.start()
    try:
        while following._value.get() == before:  # routed (its LLM router call), then follows the leader
            assert follower.is_alive()
        generation = cache.lookup_exact(scope, PASSWORD).generation
        cache.store(scope, generation, CacheEntry(query=PASSWORD, response="from the leader"), ttl=300)
    finally:
        leader.release()
        follower.join(timeout=60)
    (response,) = answers
    assert response.json()["response"] == "from the leader" and response.json()["source"] == "cache"
    with tenant_scope(tenant):
        row = UsageRecord.objects.for_tenant(tenant).get()
    assert (row.router_model, row.router_input_tokens, row.router_output_tokens) == ("gpt-4o-mini", 321, 17)
    assert row.embedding_tokens > 0 and row.cost > 0


def _llm_router(tenant, upstream) -> None:
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, router_mode="llm")
    verdict = '{"intent": "retrieval", "complexity": "low", "cache_strategy": "standard", "confidence": 0.95}'
    upstream.default.content, upstream.default.usage = verdict, (321, 17)


def _chat_stream(api_client, key, question: str):
    body = {"model": "auto", "messages": [{"role": "user", "content": question}], "stream": True}
    return api_client.post(
        "/v1/chat/completions", body, content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )


def test_a_request_refused_after_a_paid_llm_routing_is_billed_the_router(api_client, helpdesk, upstream):
    """Its key's budget spent (or asking a model its key may not use), a request is refused after
    the router ran: an LLM router's call was paid for, so it is billed, once per request."""
    tenant, _ = helpdesk()
    api_key, key = make_key(tenant, name="budgeted")
    api_key_limits_set(tenant=tenant, key_id=api_key.pk, values={"budget_usd": "0.005", "budget_period": "daily"})
    _budget(tenant, max_request_cost=Decimal("0.01"))  # a miss reserves more than the key's budget
    _llm_router(tenant, upstream)
    refused = ask(api_client, key, PASSWORD)
    streamed = _chat_stream(api_client, key, "Can I pay by invoice?")
    assert refused.status_code == 402
    assert streamed.status_code == 429 and streamed.json()["error"]["code"] == "insufficient_quota"  # OpenAI's 402
    assert [request["body"]["model"] for request in upstream.requests] == ["gpt-4o-mini", "gpt-4o-mini"]  # routers
    with tenant_scope(tenant):
        billed = list(UsageRecord.objects.for_tenant(tenant).order_by("id"))
    assert [row.source for row in billed] == ["error", "error"]
    assert all((r.router_input_tokens, r.router_output_tokens) == (321, 17) and r.cost > 0 for r in billed)
    assert refused["X-Request-ID"] == billed[0].request_id


def test_a_tenant_whose_monthly_limit_is_spent_pays_no_llm_router(api_client, helpdesk, upstream):
    """The router is skipped (routed fail-safe) rather than paid for a request that is then refused."""
    tenant, key = helpdesk()
    _llm_router(tenant, upstream)
    _budget(tenant, monthly_spend_limit=Decimal("1"))
    with tenant_scope(tenant):
        SpendCounter.objects.for_tenant(tenant).create(tenant=tenant, period=period_of(timezone.now()),
                                                       committed=Decimal("1"))  # fmt: skip
    refused = ask(api_client, key, PASSWORD)
    streamed = _chat_stream(api_client, key, "Can I pay by invoice?")
    assert refused.status_code == 402 and streamed.status_code == 429
    assert upstream.requests == []  # no router call, no answer
    assert rows(tenant) == []


def test_a_misss_reservation_is_held_until_its_ledger_row_is_written(api_client, helpdesk, upstream, monkeypatch):
    """Ended before the row, a reservation's budget is free for another request while this one's
    cost is counted nowhere: 200 requests at the last dollar overspent by 20 reservations
    (tests/reliability/test_limits.py caught it once misses prepared in line)."""
    tenant, key = helpdesk()
    _budget(tenant, max_request_cost=Decimal("0.01"), monthly_spend_limit=Decimal("5"), requests_per_minute=None)
    held_when_billed = []

    def held() -> int:
        with tenant_scope(tenant):
            return SpendReservation.objects.for_tenant(tenant).count()

    def watched(record):
        async def recording(ctx, usage):
            held_when_billed.append((usage.source, await in_db(held)))
            return await record(ctx, usage)

        return recording

    monkeypatch.setattr(ai.pipeline, "_record", watched(ai.pipeline._record))
    monkeypatch.setattr(ai.streaming, "_record", watched(ai.streaming._record))
    assert ask(api_client, key, PASSWORD).json()["source"] == "llm"
    body = {"model": "auto", "messages": [{"role": "user", "content": "Can I pay by invoice?"}], "stream": True}

    async def stream() -> bytes:
        response = await AsyncClient().post(
            "/v1/chat/completions", body, content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
        return b"".join([piece async for piece in response.streaming_content])

    assert b"[DONE]" in asyncio.run(stream())
    assert held_when_billed == [("llm", 1), ("llm", 1)]  # the answer's row, then the stream's
    assert held() == 0  # and ended after them


# -- the OpenAI-compatible API against a clumsy client ----------------------------------------------


def _post_v1(api_client, key, path: str, raw: str, content_type: str = "application/json"):
    return api_client.generic("POST", path, raw.encode(), content_type=content_type,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        ("/v1/chat/completions", '{"model":"auto","messages":[{"role":["user"],"content":"hi"}]}', "messages"),
        ("/v1/chat/completions", '{"model":"auto","messages":[{"role":"user","content":"hi \\ud800"}]}', "messages"),
        (
            "/v1/chat/completions",
            '{"model":"auto","messages":[{"role":"user","content":"hi \\u0000 there"}]}',
            "messages",
        ),
        (
            "/v1/chat/completions",
            '{"model":"auto","messages":[{"role":"user","content":"a\\u0000"},{"role":"user","content":"hi"}]}',
            "messages",
        ),
        ("/v1/chat/completions", '{"model":"\\u0000","messages":[{"role":"user","content":"hi"}]}', "model"),
        ("/v1/embeddings", '{"model":"auto","input":"\\ud800"}', "input"),
        ("/v1/embeddings", '{"model":"auto","input":["ok","nul \\u0000"]}', "input"),
    ],
)
def test_text_that_cannot_be_stored_is_a_400_naming_the_field(api_client, helpdesk, upstream, path, raw, param):
    """A lone surrogate or a NUL used to be a 500 (or cached, to break a later hit's ledger row)."""
    tenant, key = helpdesk()
    refused = _post_v1(api_client, key, path, raw)
    assert refused.status_code == 400, refused.content
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"].startswith(param), error
    assert upstream.requests == [] and rows(tenant) == []


def test_a_body_in_a_charset_its_codec_cannot_decode_is_a_400(api_client, helpdesk):
    _, key = helpdesk()
    raw = '{"model":"auto","messages":[{"role":"user","content":"hi"}]}'
    refused = _post_v1(api_client, key, "/v1/chat/completions", raw, "application/json; charset=punycode")
    assert refused.status_code == 400, refused.content


def test_an_unknown_model_name_costs_no_query_of_its_own(api_client, helpdesk):
    """Each new name used to read the catalog (and fill the price cache every tenant shares)."""
    _, key = helpdesk()

    def named(model: str):
        raw = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        return _post_v1(api_client, key, "/v1/chat/completions", raw)

    assert named("no-such-model-1").status_code == 404
    with CaptureQueriesContext(connection) as queries:
        again = named("no-such-model-2")
    assert again.status_code == 404 and again.json()["error"]["code"] == "model_not_found"
    assert not [q for q in queries.captured_queries if "catalog_modelprice" in q["sql"]]
