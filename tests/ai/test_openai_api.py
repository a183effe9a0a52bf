"""The OpenAI-compatible API (/v1/) with the real ``openai`` SDK against the real server
(gunicorn + uvicorn, tests/serving.py), real PostgreSQL, Redis and embedder; the remote
model is tests/openai_server.py, a local HTTP server speaking the OpenAI API."""

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest
import redis
from django.conf import settings

from ai.cache.keys import CacheScope, query_hash
from ai.context import context_digest
from ai.embeddings import get_embedder
from billing.models import UsageRecord
from tests.openai_server import OpenAIServer
from tests.reliability.world import set_budget
from tests.serving import served, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "How do I reset my password?"
HOURS = "What are your support hours?"


@pytest.fixture(scope="module")
def upstream():
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(upstream, django_db_setup):
    """One server for the module: gpt-4o-mini and friends answered by the local upstream."""
    ai = {
        "PROVIDERS": {
            "openai": {"base_url": upstream.base_url, "api_key_env": "TEST_OPENAI_KEY"},
            "anthropic": {"base_url": upstream.base_url, "api_key_env": "TEST_OPENAI_KEY"},
        },
        "LLM_MAX_RETRIES": 0,
    }
    with served(workers=1, ai=ai, TEST_OPENAI_KEY="sk-test") as running:
        yield running


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0)


def chat(client: openai.OpenAI, question: str, *, history=(), model="auto", **extra):
    """(completion, response headers) of a chat completion."""
    messages = [*history, {"role": "user", "content": question}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)
    return raw.parse(), raw.headers


def rows(tenant, *, at_least: int = 0) -> list[UsageRecord]:
    """The tenant's ledger; ``at_least``: once it has that many rows (a hit answers before its
    row's commit, billing/journal.py)."""
    from tenants.scoping import tenant_scope

    def read() -> list[UsageRecord]:
        with tenant_scope(tenant):
            return list(UsageRecord.objects.for_tenant(tenant).order_by("created_at"))

    if not at_least:
        return read()
    return wait_until(lambda: found if len(found := read()) >= at_least else None, timeout=10, what="ledger rows")


def test_a_completion_then_its_exact_hit_with_the_cache_headers(server, upstream, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(content="Use the Forgot password link on the sign-in page.", usage=(120, 11))
    first, headers = chat(client, PASSWORD)
    assert first.choices[0].message.content == "Use the Forgot password link on the sign-in page."
    assert first.choices[0].finish_reason == "stop" and first.object == "chat.completion"
    assert first.model == "gpt-4o-mini" and first.created > 0
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (120, 11, 131)
    assert headers["x-saascore-cache"] == "MISS" and first.id == headers["x-saascore-request-id"]
    stored_key = headers["x-saascore-cache-key"]
    scope = CacheScope(tenant.pk, get_embedder().id)
    assert stored_key == scope.entry_id(query_hash(PASSWORD))

    again, headers = chat(client, "how do I reset my password")
    assert headers["x-saascore-cache"] == "HIT-EXACT" and float(headers["x-saascore-similarity"]) == 1.0
    assert again.choices[0].message.content == first.choices[0].message.content
    assert headers["x-saascore-cache-key"] == stored_key and again.id != first.id
    paraphrase, headers = chat(client, "What's the way to reset my password?")
    assert headers["x-saascore-cache"] == "HIT-SEMANTIC" and 0.8 < float(headers["x-saascore-similarity"]) < 1
    assert headers["x-saascore-cache-key"] == stored_key  # the entry that answered
    assert paraphrase.choices[0].message.content == first.choices[0].message.content
    assert [r.source for r in rows(tenant, at_least=3)] == ["llm", "cache_exact", "cache_semantic"]
    assert rows(tenant)[0].request_id == first.id


def test_a_conversation_never_gets_another_conversations_answer(server, upstream, helpdesk):
    _, key = helpdesk()
    client = sdk(server, key)
    billing = [{"role": "system", "content": "Answer about billing only."}]
    earlier = [
        {"role": "user", "content": "I use the mobile app."},
        {"role": "assistant", "content": "Noted: the mobile app."},
    ]
    upstream.reply(content="Answer one.")
    upstream.reply(content="Answer two.")
    upstream.reply(content="Answer three.")
    lone, lone_headers = chat(client, HOURS)
    system, system_headers = chat(client, HOURS, history=billing)
    turns, turns_headers = chat(client, HOURS, history=earlier)
    assert [h["x-saascore-cache"] for h in (lone_headers, system_headers, turns_headers)] == ["MISS"] * 3
    assert [c.choices[0].message.content for c in (lone, system, turns)] == [
        "Answer one.",
        "Answer two.",
        "Answer three.",
    ]
    sent = upstream.chat_requests()[-1]["body"]["messages"]
    assert sent[1:3] == earlier and sent[-1]["role"] == "user"  # the conversation reaches the model

    repeat, headers = chat(client, HOURS, history=earlier)
    assert headers["x-saascore-cache"] == "HIT-EXACT" and repeat.choices[0].message.content == "Answer three."
    changed = [earlier[0], {"role": "assistant", "content": "Noted: the web app."}]
    upstream.reply(content="Answer four.")
    other, headers = chat(client, HOURS, history=changed)
    assert headers["x-saascore-cache"] == "MISS" and other.choices[0].message.content == "Answer four."
    # A lone question shares the tenant's cache with POST /api/v1/ai/query.
    response = httpx.post(
        f"{server.base}/api/v1/ai/query", json={"query": HOURS}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.headers["x-saascore-cache"] == "HIT-EXACT" and response.json()["response"] == "Answer one."
    assert response.headers["x-saascore-request-id"] == response.json()["request_id"]


def stream_text(stream) -> tuple[list[str], list]:
    chunks = list(stream)
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content], chunks


def test_streaming_with_the_sync_and_async_sdk_and_a_streamed_hit_in_pieces(server, upstream, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(content="Open Settings, then Security, then choose Reset password now.", usage=(90, 12))
    messages = [{"role": "user", "content": PASSWORD}]
    with client.chat.completions.with_streaming_response.create(
        model="auto", messages=messages, stream=True, stream_options={"include_usage": True}
    ) as raw:
        assert raw.headers["x-saascore-cache"] == "MISS" and raw.headers["content-type"].startswith("text/event-stream")
        pieces, chunks = stream_text(raw.parse())
    assert len(pieces) > 3 and "".join(pieces) == "Open Settings, then Security, then choose Reset password now."
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (90, 12)
    assert {c.id for c in chunks} == {raw.headers["x-saascore-request-id"]}
    assert upstream.chat_requests()[-1]["body"]["stream"] is True  # streamed from the upstream too

    async def hit() -> tuple[list[str], dict]:
        aclient = openai.AsyncOpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0)
        raw = await aclient.chat.completions.with_raw_response.create(model="auto", messages=messages, stream=True)
        return [
            c.choices[0].delta.content async for c in raw.parse() if c.choices and c.choices[0].delta.content
        ], raw.headers

    replayed, headers = asyncio.run(hit())
    assert headers["x-saascore-cache"] == "HIT-EXACT"
    assert len(replayed) >= 3 and "".join(replayed) == "".join(pieces)  # a hit replays as several chunks
    assert [r.source for r in rows(tenant, at_least=2)] == ["llm", "cache_exact"]


def test_an_aborted_stream_is_billed_for_what_it_produced_and_never_cached(server, upstream, helpdesk):
    tenant, key = helpdesk()
    held = upstream.reply(content="one two three four five six seven eight", usage=(50, 8), pause_after=2,
                          hold=threading.Event())  # fmt: skip
    body = {"model": "auto", "messages": [{"role": "user", "content": PASSWORD}], "stream": True}
    with httpx.stream(
        "POST", f"{server.base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        lines = response.iter_lines()
        contents = []
        for line in lines:
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                contents.append(delta.get("content") or "")
            if "".join(contents).strip() == "one two":
                break
        held.paused.wait(timeout=10)
    # The client is gone; the upstream never finishes this answer.
    row = wait_until(lambda: next(iter(rows(tenant)), None), timeout=20, what="the aborted stream's ledger row")
    held.hold.set()
    assert row.source == "llm" and row.model == "gpt-4o-mini"
    assert row.output_tokens == 2 and row.input_tokens > 0  # the pieces produced, counted locally
    upstream.reply(content="A whole answer.")
    again, headers = chat(sdk(server, key), PASSWORD)
    assert headers["x-saascore-cache"] == "MISS" and again.choices[0].message.content == "A whole answer."


def test_a_named_model_uses_its_route_and_others_are_refused(server, upstream, helpdesk):
    _, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(status=500)  # gpt-4o fails: its route's fallback answers
    upstream.reply(content="From the fallback.")
    answer, _ = chat(client, "How do I reset my password on mobile?", model="gpt-4o")
    assert [r["body"]["model"] for r in upstream.chat_requests()[-2:]] == ["gpt-4o", "gpt-4o-mini"]
    assert answer.model == "gpt-4o-mini" and answer.choices[0].message.content == "From the fallback."
    with pytest.raises(openai.PermissionDeniedError) as refused:  # in the catalog, in none of its routes
        chat(client, PASSWORD, model="text-embedding-3-small")
    assert refused.value.code == "model_not_allowed" and refused.value.body["param"] is None
    with pytest.raises(openai.NotFoundError) as unknown:
        chat(client, PASSWORD, model="gpt-9")
    assert unknown.value.code == "model_not_found"


def test_each_error_class_of_the_sdk(server, helpdesk):
    tenant, key = helpdesk()
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        chat(sdk(server, "sk_live_not_a_key"), PASSWORD)
    assert unauthenticated.value.body["type"] == "authentication_error"
    client = sdk(server, key)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="auto", messages=[{"role": "assistant", "content": "Hi"}])
    assert bad.value.body["param"] == "messages" and bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as bad_control:
        chat(client, PASSWORD, extra_body={"cache": {"no_cache": True}})
    assert bad_control.value.body["param"] == "cache"
    set_budget(tenant, requests_per_minute=1)  # before the server first reads this tenant's budget
    chat(client, PASSWORD)
    with pytest.raises(openai.RateLimitError) as limited:
        chat(client, PASSWORD)
    assert limited.value.code == "rate_limit_exceeded" and int(limited.value.response.headers["retry-after"]) >= 1


def test_a_spent_budget_is_429_insufficient_quota(server, helpdesk):
    from decimal import Decimal

    tenant, key = helpdesk()
    set_budget(tenant, monthly_spend_limit=Decimal("0.01"), spent=Decimal("0.01"))
    with pytest.raises(openai.RateLimitError) as spent:
        chat(sdk(server, key), PASSWORD)
    assert spent.value.code == "insufficient_quota" and spent.value.body["type"] == "insufficient_quota"
    assert spent.value.response.headers["retry-after"]


def test_models_lists_auto_the_routes_and_the_embedder(server, helpdesk):
    _, key = helpdesk()
    listed = {m.id: m for m in sdk(server, key).models.list()}
    assert {"auto", "gpt-4o", "gpt-4o-mini", "claude-3-haiku", "local-extractive", get_embedder().id} == set(listed)
    assert listed["gpt-4o"].owned_by == "openai" and listed["gpt-4o"].model_extra["saascore_fallbacks"]
    assert "text-embedding-3-small" not in listed


def test_embeddings_are_the_tenants_embedder_and_billed(server, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    result = client.embeddings.create(model="auto", input=["reset my password", "support hours"])  # base64 on the wire
    expected = get_embedder().embed(["reset my password", "support hours"]).vectors
    assert [len(d.embedding) for d in result.data] == [get_embedder().dim] * 2
    assert abs(result.data[0].embedding[0] - float(expected[0][0])) < 1e-5
    floats = client.embeddings.create(model=get_embedder().id, input="support hours", encoding_format="float")
    assert abs(floats.data[0].embedding[3] - float(expected[1][3])) < 1e-5
    billed = rows(tenant)
    assert [r.source for r in billed] == ["embedding", "embedding"] and billed[0].embedding_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-large", input="x")


def test_each_cache_control(server, upstream, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    store = redis.Redis.from_url(settings.REDIS_URL)

    def ask(question, control, content=None):
        if content is not None:  # the upstream's next answer (a hit asks it nothing)
            upstream.reply(content=content)
        answer, headers = chat(client, question, extra_body={"cache": control} if control is not None else None)
        return answer.choices[0].message.content, headers["x-saascore-cache"]

    assert ask(PASSWORD, {"no-store": True}, "Not stored.") == ("Not stored.", "MISS")
    assert ask(PASSWORD, None, "Stored.") == ("Stored.", "MISS")  # no-store stored nothing
    assert ask(PASSWORD, {"no-store": True}) == ("Stored.", "HIT-EXACT")  # no-store still reads
    assert ask(PASSWORD, {"no-cache": True}, "Fresh.") == ("Fresh.", "MISS")  # no-cache skips the read...
    assert ask(PASSWORD, None) == ("Fresh.", "HIT-EXACT")  # ...and stores the new answer

    scope = CacheScope(tenant.pk, get_embedder().id)
    ask(HOURS, {"ttl": 30}, "Nine to five.")
    assert 0 < store.ttl(scope.entry_key(query_hash(HOURS))) <= 30
    ask(HOURS, {"ttl": 10**9, "no-cache": True}, "Nine to six.")  # capped by the tenant's cache_ttl_seconds
    assert 30 < store.ttl(scope.entry_key(query_hash(HOURS))) <= 86400

    time.sleep(1.1)
    assert ask(HOURS, {"s-maxage": 60}) == ("Nine to six.", "HIT-EXACT")
    assert ask(HOURS, {"s-maxage": 1}, "Newer.") == ("Newer.", "MISS")  # older than a second: not accepted

    assert ask(HOURS, {"namespace": "v2"}, "In v2.") == ("In v2.", "MISS")  # a namespace is its own key space
    assert ask(HOURS, {"namespace": "v2"}) == ("In v2.", "HIT-EXACT")
    v2 = CacheScope(tenant.pk, get_embedder().id, context=context_digest(namespace="v2"))
    assert store.exists(v2.entry_key(query_hash(HOURS))) and v2.digest != scope.digest


def test_another_tenant_never_gets_the_answers_models_or_usage(server, upstream, helpdesk):
    tenant_a, key_a = helpdesk()
    tenant_b, key_b = helpdesk()
    upstream.reply(content="Tenant A's answer.")
    _, headers_a = chat(sdk(server, key_a), PASSWORD)
    upstream.reply(content="Tenant B's answer.")
    answer_b, headers_b = chat(sdk(server, key_b), PASSWORD)
    assert headers_b["x-saascore-cache"] == "MISS" and answer_b.choices[0].message.content == "Tenant B's answer."
    # An entry id names an entry only with the tenant of the key that presents it.
    store = redis.Redis.from_url(settings.REDIS_URL)
    digest, qhash = headers_b["x-saascore-cache-key"].split(".")
    assert store.hget(f"{{t:{tenant_b.pk}}}:e:{digest}:{qhash}", "r") == b"Tenant B's answer."
    assert store.hget(f"{{t:{tenant_a.pk}}}:e:{headers_a['x-saascore-cache-key'].replace('.', ':')}", "r") == (
        b"Tenant A's answer."
    )
    assert {m.id for m in sdk(server, key_b).models.list()} == {m.id for m in sdk(server, key_a).models.list()}
    assert [r.request_id for r in rows(tenant_b)] == [answer_b.id]
    assert len(rows(tenant_a)) == 1


def test_an_idempotent_retry_is_answered_and_billed_once(server, upstream, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(content="Only once.")
    first, _ = chat(client, PASSWORD, extra_headers={"Idempotency-Key": "retry-1"})
    retry, headers = chat(client, PASSWORD, extra_headers={"Idempotency-Key": "retry-1"})
    assert headers["idempotent-replay"] == "true" and retry.id == first.id
    assert retry.choices[0].message.content == "Only once." and len(rows(tenant)) == 1


def test_a_stream_cut_mid_way_ends_with_an_error_is_billed_and_never_cached(server, upstream, helpdesk):
    tenant, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(content="one two three four five", usage=(40, 5), cut_after=2)
    received = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": PASSWORD}], stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two " and failed.value.body["code"] == "upstream_failed"
    row = wait_until(lambda: next(iter(rows(tenant)), None), timeout=10, what="the cut stream's ledger row")
    assert row.source == "llm" and row.output_tokens == 2
    upstream.reply(content="A whole answer.")
    again, headers = chat(client, PASSWORD)
    assert headers["x-saascore-cache"] == "MISS" and again.choices[0].message.content == "A whole answer."


def test_user_is_the_end_user_of_a_per_user_cache(server, upstream, helpdesk):
    from ai.tenant_settings.models import TenantAISettings
    from tenants.scoping import tenant_scope

    tenant, key = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, cache_scope="user")
    client = sdk(server, key)
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, PASSWORD)
    assert refused.value.body["param"] == "user"
    upstream.reply(content="For Alice.")
    upstream.reply(content="For Bob.")
    assert chat(client, PASSWORD, user="alice@example.com")[1]["x-saascore-cache"] == "MISS"
    bob, headers = chat(client, PASSWORD, user="bob")
    assert headers["x-saascore-cache"] == "MISS" and bob.choices[0].message.content == "For Bob."
    alice, headers = chat(client, PASSWORD, user="alice@example.com")
    assert headers["x-saascore-cache"] == "HIT-EXACT" and alice.choices[0].message.content == "For Alice."
    sdk(server, key).embeddings.create(model="auto", input="hello", user="bob")
    assert [r.end_user for r in rows(tenant)] == ["alice@example.com", "bob", "alice@example.com", "bob"]


def test_streams_waiting_on_the_upstream_hold_no_thread_a_hit_needs(server, upstream, helpdesk):
    """More streams mid-way than the process has threads (CPU and DB pools, 2 + 8): a hit is
    still answered at once, and every stream then completes."""
    _, key = helpdesk()
    upstream.reply(content="Use the Forgot password link.")
    chat(sdk(server, key), PASSWORD)  # cached
    release = threading.Event()
    held = [upstream.reply(content="first second third", pause_after=1, hold=release) for _ in range(32)]
    url, headers = f"{server.base}/v1/chat/completions", {"Authorization": f"Bearer {key}"}

    async def run() -> tuple[float, list[str]]:
        async with httpx.AsyncClient(timeout=60) as http:

            async def one(n: int) -> str:
                question = f"How do I reset my password, case {n}?"
                body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": question}]}
                async with http.stream("POST", url, json=body, headers=headers) as response:
                    lines = [line async for line in response.aiter_lines() if line.startswith("data: {")]
                return "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines)

            streams = [asyncio.create_task(one(n)) for n in range(len(held))]
            deadline = time.monotonic() + 30
            while not all(reply.paused.is_set() for reply in held):
                assert time.monotonic() < deadline, "the streams did not all reach the upstream"
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            hit = await http.post(
                url, json={"model": "auto", "messages": [{"role": "user", "content": PASSWORD}]}, headers=headers
            )
            seconds = time.perf_counter() - started
            assert hit.headers["x-saascore-cache"] == "HIT-EXACT"
            release.set()
            return seconds, await asyncio.gather(*streams)

    seconds, answers = asyncio.run(run())
    assert seconds < 2.0, seconds
    assert answers == ["first second third"] * len(held)


def test_an_answer_cut_at_max_tokens_says_length_and_is_never_cached(server, upstream, helpdesk):
    """A model that stops at ``max_tokens`` (the request's cost cap) says so, and an answer cut
    short is not served to the next asker from the cache, streamed or not."""
    tenant, key = helpdesk()
    client = sdk(server, key)
    upstream.reply(content="Open Settings, then", usage=(90, 5), finish_reason="length")
    cut, headers = chat(client, PASSWORD)
    assert cut.choices[0].finish_reason == "length" and headers["x-saascore-cache"] == "MISS"
    assert "x-saascore-cache-key" not in headers  # nothing was stored

    upstream.reply(content="Open Settings, then Security", usage=(90, 6), finish_reason="length")
    messages = [{"role": "user", "content": PASSWORD}]
    streamed = list(client.chat.completions.create(model="auto", messages=messages, stream=True))
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "length"

    upstream.reply(content="Open Settings, then Security, then Reset password.", usage=(90, 12))
    whole, headers = chat(client, PASSWORD)
    assert whole.choices[0].finish_reason == "stop" and headers["x-saascore-cache"] == "MISS"
    assert [r.source for r in rows(tenant)] == ["llm", "llm", "llm"]  # each billed, none a hit
