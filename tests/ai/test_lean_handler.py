"""The lean ASGI handler (saascore/asgi.py) in process, driven as the server drives it, with
the real PostgreSQL, Redis and embedder; the upstream is tests/openai_server.py.

A client that leaves before its stream starts gets none of it produced; a request gives its
door place back once its answer is built, not once a slow client has read it, and an
embeddings request gives it back before it embeds (saascore/door.py)."""

import asyncio
import json
import threading
import uuid

import pytest

from ai.api import embeddings as embeddings_api
from ai.pipeline import answer_query
from billing.models import UsageRecord
from saascore.asgi import application
from tenants.scoping import tenant_scope

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "How do I reset my password?"
HOURS = "What are your support hours?"


class Client:
    """One HTTP request handed over as an ASGI server hands it: ``gone`` ends the connection;
    with ``reads`` unset, the client does not read what is sent to it (each send waits)."""

    def __init__(self, path: str, body: dict, key: str, *, reads: asyncio.Event | None = None) -> None:
        headers = [(b"host", b"testserver"), (b"content-type", b"application/json"),
                   (b"authorization", f"Bearer {key}".encode())]  # fmt: skip
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        }  # fmt: skip
        self._body: bytes | None = json.dumps(body).encode()
        self.gone = asyncio.Event()
        self.reads = reads
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if self.reads is not None:
            await self.reads.wait()
        self.sent.append(message)

    async def request(self) -> None:
        await application(self.scope, self.receive, self.send)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)


def ask(tenant, query: str):
    return answer_query(tenant=tenant, query=query, user_id=None, request_id=uuid.uuid4().hex)


def rows(tenant) -> list[UsageRecord]:
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant).order_by("created_at"))


def test_a_stream_whose_client_left_before_it_started_is_not_produced(helpdesk, upstream):
    tenant, key = helpdesk()
    held = upstream.reply(content="one two three four five six seven eight", usage=(50, 8), pause_after=0,
                          hold=threading.Event())  # fmt: skip
    body = {"model": "auto", "messages": [{"role": "user", "content": PASSWORD}], "stream": True}

    async def run() -> Client:
        client = Client("/v1/chat/completions", body, key)
        client.gone.set()  # it sends its request and leaves at once
        asking = asyncio.create_task(client.request())
        assert await asyncio.to_thread(held.paused.wait, 20), "the call never reached the upstream"
        held.hold.set()  # the first piece, and the rest of the answer, come now
        await asyncio.wait_for(asking, 30)
        return client

    client = asyncio.run(run())
    assert client.sent == []  # nothing sent to a client that is gone
    [row] = rows(tenant)
    assert row.source == "llm" and 0 < row.output_tokens < 8  # billed for its first piece, not the answer
    upstream.reply(content="A whole answer.")
    again = asyncio.run(ask(tenant, PASSWORD))
    assert again.source == "llm" and again.response == "A whole answer."  # the cut answer was not cached


def test_a_place_is_given_back_once_the_answer_is_built_and_before_an_embedding(
    helpdesk, upstream, settings, monkeypatch
):
    settings.AI = {**settings.AI, "LOOKUP_CONCURRENCY": 1}
    tenant, key = helpdesk()
    upstream.reply(content="Nine to five, Monday to Friday.")
    in_cpu = embeddings_api.in_cpu

    async def run():
        assert (await ask(tenant, HOURS)).source == "llm"  # now an exact hit
        embedding, embedded = asyncio.Event(), asyncio.Event()

        async def held_in_cpu(work, *args, **kwargs):
            embedding.set()
            await embedded.wait()
            return await in_cpu(work, *args, **kwargs)

        monkeypatch.setattr(embeddings_api, "in_cpu", held_in_cpu)
        embeddings = Client("/v1/embeddings", {"model": "auto", "input": ["a", "b"]}, key)
        asking = asyncio.create_task(embeddings.request())
        await asyncio.wait_for(embedding.wait(), 20)
        while_embedding = await asyncio.wait_for(ask(tenant, HOURS), 10)  # the door's one place is free

        slow = Client("/v1/chat/completions", {"model": "auto"}, key, reads=asyncio.Event())  # a 400, unread
        unread = asyncio.create_task(slow.request())
        while_unread = await asyncio.wait_for(ask(tenant, HOURS), 10)
        slow.reads.set()
        embedded.set()
        await asyncio.wait_for(asyncio.gather(asking, unread), 20)
        return while_embedding, while_unread, embeddings, slow

    while_embedding, while_unread, embeddings, slow = asyncio.run(run())
    assert while_embedding.cache["tier"] == "exact" and while_unread.cache["tier"] == "exact"
    assert embeddings.status == 200 and slow.status == 400
    body = json.loads(b"".join(m.get("body", b"") for m in embeddings.sent))
    assert len(body["data"]) == 2


def test_a_chunked_body_past_the_limit_is_a_413_before_it_is_read_in_full(settings):
    """No Content-Length (chunked): the middleware cannot refuse it up front, so the handler
    stops reading at API_MAX_BODY_BYTES instead of writing the whole body to a file first."""
    settings.API_MAX_BODY_BYTES = 1000

    async def run() -> tuple[Client, int]:
        client = Client("/v1/chat/completions", {}, "sk-none")
        chunks = iter([b"x" * 400] * 100)  # 40,000 bytes in 400-byte chunks
        given = 0

        async def receive() -> dict:
            nonlocal given
            given += 1
            return {"type": "http.request", "body": next(chunks), "more_body": True}

        await application(client.scope, receive, client.send)
        return client, given

    client, given = asyncio.run(run())
    assert client.status == 413 and given == 3  # the third chunk passed the limit: no more were read
    error = json.loads(b"".join(m.get("body", b"") for m in client.sent))["error"]
    assert error["code"] == "body_too_large" and "1000" in error["message"]  # OpenAI's shape on /v1/
