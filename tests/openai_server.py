"""A real local HTTP server that speaks the OpenAI API, for tests.

The product talks to it through the real ``openai`` client, so requests,
retries, timeouts and error handling are exercised for real. It is the only
stand-in the tests use: it replaces the remote LLM, nothing else.

    with OpenAIServer() as server:
        server.reply(content="Hi", usage=(12, 3))           # next chat completion
        server.reply(status=500)                             # then a server error
        server.reply(delay=2.0, content="slow")              # then a slow answer
        server.reply(raw=b"{not json")                       # then a malformed body
        held = server.reply(content="late", hold=threading.Event())  # answered once the test releases it
        held.arrived.wait(); held.client_port                # the call came (from this local port of the caller)
        held = server.reply_embeddings(status=400, hold=threading.Event())  # next embeddings call
        held.arrived.wait(); held.hold.set()                 # ...waits until released, then fails
        paused = server.reply(content="a b c d", pause_after=2, hold=threading.Event())  # a stream (stream: true)
        paused.paused.wait(); paused.hold.set()              # ...pauses after two words until released
        server.reply(content="a b c d", cut_after=2)         # a stream whose connection ends after two words
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
"""

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


@dataclass
class Reply:
    """The answer to one chat completion. With ``hold`` the server answers only once the test
    sets it; ``arrived`` tells the test the call came, and ``client_port`` from which port."""

    content: str | None = None
    usage: tuple[int, int] = (10, 5)
    status: int = 200
    delay: float = 0.0
    raw: bytes | None = None
    json_body: dict | None = None
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    client_port: int | None = None
    # A streamed answer (``stream: true``) with ``hold`` pauses after this many words instead.
    pause_after: int | None = None
    paused: threading.Event = field(default_factory=threading.Event)
    cut_after: int | None = None  # a streamed answer whose connection ends after this many words
    finish_reason: str = "stop"  # a whole answer cut at max_tokens says "length" by itself


@dataclass
class EmbeddingReply:
    """The answer to one embeddings call: ``status`` other than 200 is an error; with
    ``hold`` the server answers only once the test sets it (``arrived`` tells it the call came)."""

    status: int = 200
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)


@dataclass
class OpenAIServer:
    embedding_dim: int = 64
    default: Reply = field(default_factory=lambda: Reply(content="OK"))
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._embedding_replies: deque[EmbeddingReply] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- scripting ----------------------------------------------------------------

    def reply(self, **fields) -> Reply:
        """Queue the answer to the next chat completion."""
        reply = Reply(**fields)
        with self._lock:
            self._replies.append(reply)
        return reply

    def reply_embeddings(self, **fields) -> EmbeddingReply:
        """Queue the answer to the next embeddings call (by default every call succeeds)."""
        reply = EmbeddingReply(**fields)
        with self._lock:
            self._embedding_replies.append(reply)
        return reply

    def _next_embedding(self) -> EmbeddingReply:
        with self._lock:
            return self._embedding_replies.popleft() if self._embedding_replies else EmbeddingReply()

    def _next(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else self.default

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    # -- lifecycle -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "OpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                if self.path.endswith("/embeddings"):
                    self._embeddings_reply(server._next_embedding(), body)
                elif self.path.endswith("/chat/completions"):
                    reply = server._next()
                    if body.get("stream") and reply.status == 200 and reply.raw is None:
                        self._stream(reply, body)
                        return
                    if reply.hold is not None:
                        reply.client_port = self.client_address[1]
                        reply.arrived.set()
                        reply.hold.wait(timeout=60)  # released by the test (an Event, not a sleep)
                    if reply.delay:
                        time.sleep(reply.delay)  # upstream latency being simulated, not test synchronisation
                    if reply.raw is not None:
                        self._send_raw(reply.status, reply.raw)
                    elif reply.status != 200:
                        error = {"error": {"message": f"simulated {reply.status}", "type": "server_error"}}
                        self._send(reply.status, error)
                    else:
                        self._send(200, reply.json_body or server._completion(body, reply))
                else:
                    self._send(404, {"error": {"message": "unknown path"}})

            def _embeddings_reply(self, reply: EmbeddingReply, body: dict) -> None:
                reply.arrived.set()
                if reply.hold is not None:
                    reply.hold.wait(timeout=30)  # released by the test (an Event, not a sleep)
                if reply.status != 200:
                    error = {"error": {"message": f"simulated {reply.status}", "type": "invalid_request_error"}}
                    self._send(reply.status, error)
                else:
                    self._send(200, server._embeddings(body))

            def _stream(self, reply: Reply, body: dict) -> None:
                """Server-Sent Events in OpenAI's chunk format, a word a chunk; usage last if asked."""
                reply.arrived.set()
                base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time())}
                base["model"] = body.get("model")
                words = re.findall(r"\S+\s*", reply.content or "")
                events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
                events += [{**base, "choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
                events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    prompt, completion = reply.usage
                    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
                    events.append({**base, "choices": [], "usage": {**usage, "total_tokens": prompt + completion}})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for n, event in enumerate(events):
                        if reply.cut_after is not None and n == 1 + reply.cut_after:
                            return  # no finish_reason, no [DONE]: the connection just ends (HTTP/1.0)
                        if reply.hold is not None and n == 1 + (reply.pause_after or 0):
                            reply.paused.set()
                            reply.hold.wait(timeout=60)  # released by the test (an Event, not a sleep)
                        self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (an aborted stream)

            def _send(self, status: int, payload: dict) -> None:
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- payloads --------------------------------------------------------------------

    def _embeddings(self, body: dict) -> dict:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = body.get("dimensions") or self.embedding_dim
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dim)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _completion(self, body: dict, reply: Reply) -> dict:
        prompt, completion = reply.usage
        finish = reply.finish_reason
        if body.get("max_tokens") is not None and completion > body["max_tokens"]:
            completion, finish = body["max_tokens"], "length"  # as a real server: never more than asked for
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic vector per text (not normalised, to test the client's normalisation)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return (np.random.default_rng(seed).standard_normal(dim) * 3).tolist()
