"""Answer with the routed model, then its fallbacks in order.

A model whose provider has no credentials is skipped. The local extractive
answerer ends every chain unless the tenant turned that off, so the gateway
answers with no API key at all. The result names the model that really answered.
"""

import functools
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx2
import openai

from ai.embeddings.local import local_embedder
from ai.llm.extractive import MODEL as LOCAL_MODEL
from ai.llm.extractive import extract_answer
from ai.llm.providers import async_provider_client
from ai.rag.retrieval import RetrievedChunk
from catalog.models import MILLION, ModelPrice
from catalog.selectors import aprice_at
from saascore import metrics
from saascore.api.errors import ApiError
from saascore.conf import ai_settings
from saascore.pools import in_cpu

logger = logging.getLogger("saascore.llm")

SYSTEM_PROMPT = (
    "You are a help-desk assistant. Answer the user's question using only the numbered context passages. "
    "If they do not contain the answer, say you don't know. Be concise."
)
MAX_OUTPUT_TOKENS = 500


class UpstreamFailed(ApiError):
    """Every model of the chain failed (502), with each attempt's reason."""

    status, code = 502, "upstream_failed"

    def __init__(self, attempts: list[tuple[str, str]]) -> None:
        super().__init__(
            "No model could answer: every model of the route failed or has no credentials.",
            details={"attempts": [{"model": model, "reason": reason} for model, reason in attempts]},
        )
        self.attempts = attempts


@dataclass
class Generation:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    used: list[RetrievedChunk]
    attempts: list[tuple[str, str]] = field(default_factory=list)
    finish_reason: str = "stop"  # "length": cut at max_tokens (the request's cost cap); never cached


# Time an attempt may spend beyond its timeout (the client's retry back-off, connection set-up).
ATTEMPT_ALLOWANCE = 5.0


def chain_deadline(chain: list[str]) -> float:
    """The longest generating with ``chain`` can take: every remote model may use all its attempts."""
    per_remote = (ai_settings.LLM_TIMEOUT + ATTEMPT_ALLOWANCE) * (ai_settings.LLM_MAX_RETRIES + 1)
    return per_remote * sum(model != LOCAL_MODEL for model in chain) + ATTEMPT_ALLOWANCE


def model_chain(model: str, fallbacks: tuple[str, ...], *, local_fallback: bool) -> list[str]:
    chain = list(dict.fromkeys([model, *fallbacks]))
    if local_fallback and LOCAL_MODEL not in chain:
        chain.append(LOCAL_MODEL)
    return chain


def _messages(query: str, chunks: list[RetrievedChunk], history: tuple[dict, ...] = ()) -> list[dict]:
    """The gateway's instructions, then the caller's conversation before its question (a
    system prompt, earlier turns), then the question with the tenant's passages."""
    context = "\n\n".join(f"[{n}] {c.title}\n{c.text}" for n, c in enumerate(chunks, 1)) or "(no passages)"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *history,
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {query}"},
    ]


def _local(query: str, chunks: list[RetrievedChunk]) -> Generation:
    extract = extract_answer(query, chunks)
    embedder = local_embedder()
    prompt_tokens = embedder.count_tokens(query) + sum(c.token_count for c in chunks)
    return Generation(extract.text, LOCAL_MODEL, prompt_tokens, embedder.count_tokens(extract.text), extract.used)


# A provider's tokenizer may count more than ours: prompt estimates carry this margin.
PROMPT_ESTIMATE_FACTOR = Decimal("1.25")
PROMPT_ESTIMATE_EXTRA = 32  # the chat template's own tokens
MIN_OUTPUT_TOKENS = 32  # a cap that leaves less than this is no answer at all


@functools.cache
def _system_prompt_tokens() -> int:
    return local_embedder().count_tokens(SYSTEM_PROMPT)


# Our tokenizer (WordPiece) makes one [UNK] of a word longer than this; a provider's counts
# about a token per two of its characters (a pasted blob, a base64 string).
LONG_WORD_CHARACTERS = 100


def _text_tokens(text: str) -> int:
    """The local tokenizer's count of ``text``, and what it hides in words too long for it."""
    hidden = sum(len(word) // 2 for word in text.split() if len(word) > LONG_WORD_CHARACTERS)
    return local_embedder().count_tokens(text) + hidden


def prompt_estimate(query: str, chunks: list[RetrievedChunk], history: tuple[dict, ...] = ()) -> int:
    """The tokens of the prompt ``_messages`` builds, with a margin for a provider's tokenizer.
    Passages count by the token counts stored at ingestion; only the rest is tokenized."""
    count = _text_tokens
    counted = (
        _system_prompt_tokens() + count(query) + sum(count(str(m.get("content") or "")) for m in history)
        + sum(c.token_count + count(c.title) + 4 for c in chunks)
    )  # fmt: skip
    return int(counted * PROMPT_ESTIMATE_FACTOR) + PROMPT_ESTIMATE_EXTRA


def output_cap(price: ModelPrice, prompt: int, budget: Decimal | None) -> int:
    """The most output tokens ``budget`` pays for on this model after a prompt of ``prompt``
    tokens (0: the prompt alone would pass it). Keeps a request's spend within what admission
    reserved."""
    if budget is None:
        return MAX_OUTPUT_TOKENS
    left = budget - price.cost(prompt, 0)
    if left <= 0:
        return 0
    if not price.output_per_million:
        return MAX_OUTPUT_TOKENS
    return min(MAX_OUTPUT_TOKENS, int(left * MILLION / price.output_per_million))


async def _remote(
    client: openai.AsyncOpenAI, model: str, messages: list[dict], chunks: list[RetrievedChunk], max_tokens: int
) -> Generation:
    completion = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0.2
    )
    text = (completion.choices[0].message.content or "").strip()
    if not text:
        raise ValueError("empty answer")
    usage = completion.usage
    return Generation(
        text, model, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0, list(chunks),
        finish_reason=completion.choices[0].finish_reason or "stop",
    )  # fmt: skip


async def _ready(
    model: str, prompt: int, budget: Decimal | None, attempts: list[tuple[str, str]]
) -> tuple[openai.AsyncOpenAI, int] | None:
    """The client and ``max_tokens`` of a remote model, or None (the reason in ``attempts``)."""
    price = await aprice_at(model=model)
    client = async_provider_client(price.provider) if price else None
    if client is None:
        attempts.append((model, "no credentials"))
        return None
    max_tokens = output_cap(price, prompt, budget)
    if max_tokens < MIN_OUTPUT_TOKENS:
        attempts.append((model, "over the request's cost limit (max_request_cost)"))
        return None
    return client, max_tokens


async def _prompt(
    query: str, chunks: list[RetrievedChunk], history: tuple[dict, ...], chain: list[str], budget: Decimal | None
) -> int:
    """The prompt's token estimate, counted (CPU pool) only when a paid model must be capped."""
    if budget is None or all(model == LOCAL_MODEL for model in chain):
        return 0
    return await in_cpu(prompt_estimate, query, chunks, history)


def _failed(model: str, exc: Exception, attempts: list[tuple[str, str]]) -> None:
    reason = f"{type(exc).__name__}: {str(exc)[:160]}"
    attempts.append((model, reason))
    metrics.UPSTREAM_ERRORS.labels(model=model).inc()
    logger.warning("model %s failed: %s", model, reason)


async def generate(
    *, query: str, chunks: list[RetrievedChunk], chain: list[str], budget: Decimal | None = None,
    history: tuple[dict, ...] = (), on_call: Callable[[], None] | None = None,
) -> Generation:  # fmt: skip
    """The first model of ``chain`` that answers. ``budget`` (USD) caps what the answer may
    cost: each paid model gets the ``max_tokens`` it pays for, and one whose prompt alone
    would pass it is skipped. ``on_call`` runs just before each remote model's call (the
    pipeline gives its miss permit back there: ai/miss_gate.py).

    A remote model is awaited through the async client: the call holds no thread, so a
    process holds as many calls in flight as its upstreams allow. CPU work (the local
    answerer, counting a prompt's tokens) runs in the CPU pool.
    """
    attempts: list[tuple[str, str]] = []
    messages = _messages(query, chunks, history)
    prompt = await _prompt(query, chunks, history, chain, budget)
    for model in chain:
        if model == LOCAL_MODEL:
            result = await in_cpu(_local, query, chunks)
            result.attempts = attempts
            return result
        if (ready := await _ready(model, prompt, budget, attempts)) is None:
            continue
        if on_call is not None:
            on_call()
        try:
            result = await _remote(ready[0], model, messages, chunks, ready[1])
        except (openai.APIError, ValueError, IndexError, AttributeError) as exc:
            _failed(model, exc, attempts)
            continue
        result.attempts = attempts
        return result
    raise UpstreamFailed(attempts)


_PIECE = re.compile(r"(?:\S+\s*){1,4}")  # a streamed piece of a whole answer: up to four words


def pieces(text: str) -> list[str]:
    """A whole answer (the local model's, a cached one) as the pieces of a stream."""
    return _PIECE.findall(text) or [text]


@dataclass
class Streamed:
    """A generation as it streams: what it produced so far and which model produced it.

    The tokens are the upstream's figures when its last chunk (``include_usage``) came;
    a stream that ended before it (aborted by the client, failed mid-way) is counted
    with the local tokenizer: the prompt sent, and the text produced so far.
    """

    messages: list[dict] = field(default_factory=list)
    model: str = ""
    parts: list[str] = field(default_factory=list)
    used: list[RetrievedChunk] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def generation(self) -> Generation:
        prompt, output = self.input_tokens, self.output_tokens
        if prompt is None or output is None:
            count = local_embedder().count_tokens
            if prompt is None:
                prompt = await in_cpu(lambda: sum(count(m["content"]) for m in self.messages))
            if output is None:
                output = await in_cpu(count, self.text)
        return Generation(self.text.strip(), self.model, prompt, output, self.used, finish_reason=self.finish_reason)


async def generate_stream(
    *, query: str, chunks: list[RetrievedChunk], chain: list[str], out: Streamed, budget: Decimal | None = None,
    history: tuple[dict, ...] = (),
) -> AsyncIterator[str]:  # fmt: skip
    """``generate``, streamed: the pieces of the first model of ``chain`` that answers, into
    ``out`` as they come. A model that fails before its first piece passes to the next; once
    a piece went out the answer is that model's, and a failure ends the stream (UpstreamFailed).

    The upstream is streamed through the async client (no thread held); the local answerer's
    answer is computed whole in the CPU pool and split into pieces.
    """
    attempts: list[tuple[str, str]] = []
    out.messages = _messages(query, chunks, history)
    prompt = await _prompt(query, chunks, history, chain, budget)
    for model in chain:
        if model == LOCAL_MODEL:
            result = await in_cpu(_local, query, chunks)
            out.model, out.used = LOCAL_MODEL, result.used
            out.input_tokens, out.output_tokens = result.input_tokens, result.output_tokens
            for piece in pieces(result.text):
                out.parts.append(piece)
                yield piece
            return
        if (ready := await _ready(model, prompt, budget, attempts)) is None:
            continue
        client, max_tokens = ready
        try:
            stream = await client.chat.completions.create(
                model=model, messages=out.messages, max_tokens=max_tokens, temperature=0.2, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
        except openai.APIError as exc:
            _failed(model, exc, attempts)
            continue
        finished = False
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    out.input_tokens, out.output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                text = chunk.choices[0].delta.content if chunk.choices else None
                if chunk.choices and chunk.choices[0].finish_reason:
                    finished, out.finish_reason = True, chunk.choices[0].finish_reason
                if text:
                    if not out.parts:
                        out.model, out.used = model, list(chunks)
                    out.parts.append(text)
                    yield text
            if out.parts and not finished:  # the connection ended without the last chunk: a cut answer
                raise ValueError("the stream ended before its finish_reason")
        except (openai.APIError, httpx2.HTTPError, ValueError) as exc:
            _failed(model, exc, attempts)
            if out.parts:
                raise UpstreamFailed(attempts) from None  # mid-way: the client has part of this model's answer
            continue
        finally:
            await stream.close()
        if out.parts:
            return
        attempts.append((model, "empty answer"))
    raise UpstreamFailed(attempts)
