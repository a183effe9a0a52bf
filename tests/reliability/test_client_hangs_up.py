"""A client that hangs up while its answer is being generated.

The model is paid for either way, so the answer is finished, cached and billed: hanging up
must not be a way to make the gateway pay for a call nobody is billed for. (A stream stops
when its client leaves; that is the OpenAI-compatible API's business.)
"""

import json
import socket
import threading
from urllib.parse import urlsplit

from tests.openai_server import OpenAIServer
from tests.reliability.load import QUERY_PATH, post_query
from tests.reliability.world import ledger, route_everything, starter_router, world
from tests.serving import wait_until

ASK = {"query": "How do I get a refund?"}


def send_only(base: str, key: str, body: dict) -> socket.socket:
    """A caller that sends its request and reads nothing (the test closes the socket)."""
    url = urlsplit(base)
    payload = json.dumps(body).encode()
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(
        f"POST {QUERY_PATH} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def test_a_client_that_hangs_up_is_still_answered_cached_and_billed(serve, plaintext):
    starter_router()
    w = world("hangup", plaintext.keys)
    route_everything(w.tenant, "claude-3-haiku")
    with OpenAIServer() as upstream:
        env = {"ANTHROPIC_API_KEY": "sk-test-upstream", "ANTHROPIC_BASE_URL": upstream.base_url}
        with serve(workers=1, **env) as server:
            reply = upstream.reply(content="Quote your order number.", usage=(300, 40), hold=threading.Event())
            caller = send_only(server.base, w.key, ASK)
            assert reply.arrived.wait(timeout=60), "the model call never came"
            caller.close()  # the client is gone while the model works
            reply.hold.set()
            wait_until(lambda: ledger(w.tenant), timeout=30, what="the hung-up request's ledger row")

            status, headers, body, _ = post_query(server.base, w.key, ASK)
            assert status == 200 and headers["X-Cache"] == "HIT-EXACT", body
            assert body["response"] == "Quote your order number."

    rows = ledger(w.tenant)
    assert [r.source for r in rows] == ["llm", "cache_exact"]
    assert rows[0].model == "claude-3-haiku" and rows[0].cost > 0 and rows[0].input_tokens == 300
