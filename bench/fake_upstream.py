"""An OpenAI-compatible chat server with realistic latency and token counts, for the load benchmark.

    python bench/fake_upstream.py --port 8799 [--seed 8] [--median-ms 800] [--sigma 0.6] [--fixed-ms 5000]

Each chat completion sleeps a log-normal time (median 800 ms, sigma 0.6: p95
about 2.1 s, p99 about 3.2 s, capped at 20 s) and answers with a log-normal
number of output tokens (median 180, within 16..max_tokens). Prompt tokens are
counted from the messages (about 4 characters a token, as BPE tokenizers give
for English). Both draws are seeded by the prompt and by how many times this
server has seen it, so every configuration of a run meets the same upstream.

The sleep is reported three ways: the ``X-Upstream-Sleep-Ms`` header, a
reference ``[ref u-000123]`` at the end of the answer (the gateway passes the
answer through, so the client can match its request to the call), and the call
log at ``GET /bench/calls``. ``POST /bench/reset`` empties the log and the
prompt counts. The answer has no digits runs or addresses, so the gateway's
personal-data guard never refuses to cache it.

``--fixed-ms`` replaces the log-normal draw by one fixed sleep (the held-in-flight
step: 1,000 misses waiting on a 5 s upstream). ``POST /v1/embeddings`` embeds with
the product's own local model (``ai.embeddings.local``, all-MiniLM-L6-v2 on one
onnxruntime thread, no sleep): the peer's semantic cache (LiteLLM's
``redis-semantic``) pays the same embedding as the product's, here instead of in
the gateway's process.
"""

import argparse
import asyncio
import hashlib
import math
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

_WORD = re.compile(r"[A-Za-z]{3,}")
FILLER = (
    "you can do this from your account settings page and the change applies at once "
    "if the option is missing ask the administrator of your workspace to enable it for you "
    "the help centre article explains each step and what happens next in more detail"
).split()


class Upstream:
    def __init__(
        self, seed: int, median_ms: float, sigma: float, output_median: int, max_sleep_ms: float, fixed_ms: float = 0
    ) -> None:
        self.seed = seed
        self.fixed_ms = fixed_ms
        self._embedder = None
        self._embedding_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self.median_ms = median_ms
        self.sigma = sigma
        self.output_median = output_median
        self.max_sleep_ms = max_sleep_ms
        self.seen: dict[str, int] = {}
        self.calls: list[dict] = []

    def draw(self, model: str, prompt: str, max_tokens: int) -> tuple[float, int, random.Random]:
        digest = hashlib.sha256(f"{model}\x1f{prompt}".encode()).hexdigest()
        occurrence = self.seen.get(digest, 0)
        self.seen[digest] = occurrence + 1
        rng = random.Random(f"{self.seed}:{digest}:{occurrence}")
        sleep_ms = min(self.median_ms * math.exp(self.sigma * rng.gauss(0, 1)), self.max_sleep_ms)
        if self.fixed_ms:
            sleep_ms = self.fixed_ms
        tokens = int(self.output_median * math.exp(0.5 * rng.gauss(0, 1)))
        return sleep_ms, max(16, min(tokens, max_tokens)), rng

    async def chat(self, request: web.Request) -> web.Response:
        started = time.time()
        body = await request.json()
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content") or "") for m in messages)
        model = str(body.get("model") or "unknown")
        sleep_ms, output_tokens, rng = self.draw(model, prompt, int(body.get("max_tokens") or 500))
        prompt_tokens = sum(4 + math.ceil(len(str(m.get("content") or "")) / 4) for m in messages)
        number = len(self.calls)
        call = {"ref": f"u-{number:06d}", "model": model, "sleep_ms": round(sleep_ms, 3), "start": started}
        self.calls.append(call)
        await asyncio.sleep(sleep_ms / 1000)
        text = _answer(prompt, output_tokens, rng) + f" [ref {call['ref']}]"
        call["end"] = time.time()
        payload = {
            "id": f"chatcmpl-{call['ref']}",
            "object": "chat.completion",
            "created": int(started),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": prompt_tokens + output_tokens,
            },
        }
        return web.json_response(payload, headers={"X-Upstream-Sleep-Ms": f"{sleep_ms:.3f}"})

    def _embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        if self._embedder is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from ai.embeddings.local import local_embedder

            self._embedder = local_embedder(None, threads=1)
        result = self._embedder.embed(texts)
        return result.vectors.tolist(), result.input_tokens

    async def embeddings(self, request: web.Request) -> web.Response:
        """OpenAI's embeddings API over the product's local MiniLM (one thread, off the event loop)."""
        body = await request.json()
        texts = body.get("input") or []
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(self._embedding_thread, self._embed, texts)
        payload = {
            "object": "list",
            "model": str(body.get("model") or "all-minilm-l6-v2"),
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return web.json_response(payload)

    async def calls_log(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls})

    async def reset(self, request: web.Request) -> web.Response:
        self.calls, self.seen = [], {}
        return web.json_response({"ok": True})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "calls": len(self.calls)})


def _answer(prompt: str, tokens: int, rng: random.Random) -> str:
    """About ``tokens`` tokens of words from the prompt's passages (4 characters a token)."""
    words = _WORD.findall(prompt)[-400:] or FILLER
    out: list[str] = []
    length = 0
    while length < tokens * 4:
        word = rng.choice(words if rng.random() < 0.7 else FILLER).lower()
        out.append(word)
        length += len(word) + 1
    sentences = [" ".join(out[i : i + 14]).capitalize() + "." for i in range(0, len(out), 14)]
    return " ".join(sentences)


def app(upstream: Upstream) -> web.Application:
    application = web.Application(client_max_size=4 * 1024 * 1024)
    application.router.add_post("/v1/chat/completions", upstream.chat)
    application.router.add_post("/v1/embeddings", upstream.embeddings)
    application.router.add_get("/bench/calls", upstream.calls_log)
    application.router.add_post("/bench/reset", upstream.reset)
    application.router.add_get("/bench/health", upstream.health)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--median-ms", type=float, default=800.0)
    parser.add_argument("--sigma", type=float, default=0.6)
    parser.add_argument("--output-median", type=int, default=180)
    parser.add_argument("--max-sleep-ms", type=float, default=20_000.0)
    parser.add_argument("--fixed-ms", type=float, default=0.0, help="one fixed sleep instead of the log-normal")
    args = parser.parse_args()
    upstream = Upstream(args.seed, args.median_ms, args.sigma, args.output_median, args.max_sleep_ms, args.fixed_ms)
    # backlog: the held-in-flight step opens 1,000 connections at once
    web.run_app(app(upstream), host=args.host, port=args.port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
