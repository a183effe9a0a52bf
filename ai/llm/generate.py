"""Answer with the routed model, then its fallbacks in order.

A model whose provider has no credentials is skipped. The local extractive
answerer ends every chain unless the tenant turned that off, so the gateway
answers with no API key at all. The result names the model that really answered.
"""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

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


def _messages(query: str, chunks: list[RetrievedChunk]) -> list[dict]:
    context = "\n\n".join(f"[{n}] {c.title}\n{c.text}" for n, c in enumerate(chunks, 1)) or "(no passages)"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
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


def output_cap(price: ModelPrice, messages: list[dict], budget: Decimal | None) -> int:
    """The most output tokens ``budget`` pays for on this model after its prompt (0: the
    prompt alone would pass it). Keeps a request's spend within what admission reserved."""
    if budget is None:
        return MAX_OUTPUT_TOKENS
    counted = sum(local_embedder().count_tokens(message["content"]) for message in messages)
    prompt = int(counted * PROMPT_ESTIMATE_FACTOR) + PROMPT_ESTIMATE_EXTRA
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
        text, model, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0, list(chunks)
    )


async def generate(
    *, query: str, chunks: list[RetrievedChunk], chain: list[str], budget: Decimal | None = None
) -> Generation:
    """The first model of ``chain`` that answers. ``budget`` (USD) caps what the answer may
    cost: each paid model gets the ``max_tokens`` it pays for, and one whose prompt alone
    would pass it is skipped.

    A remote model is awaited through the async client: the call holds no thread, so a
    process holds as many calls in flight as its upstreams allow. CPU work (the local
    answerer, counting a prompt's tokens) runs in the CPU pool.
    """
    attempts: list[tuple[str, str]] = []
    messages = _messages(query, chunks)
    for model in chain:
        if model == LOCAL_MODEL:
            result = await in_cpu(_local, query, chunks)
            result.attempts = attempts
            return result
        price = await aprice_at(model=model)
        client = async_provider_client(price.provider) if price else None
        if client is None:
            attempts.append((model, "no credentials"))
            continue
        max_tokens = await in_cpu(output_cap, price, messages, budget)
        if max_tokens < MIN_OUTPUT_TOKENS:
            attempts.append((model, "over the request's cost limit (max_request_cost)"))
            continue
        try:
            result = await _remote(client, model, messages, chunks, max_tokens)
        except (openai.APIError, ValueError, IndexError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:160]}"
            attempts.append((model, reason))
            metrics.UPSTREAM_ERRORS.labels(model=model).inc()
            logger.warning("model %s failed, trying the next: %s", model, reason)
            continue
        result.attempts = attempts
        return result
    raise UpstreamFailed(attempts)
