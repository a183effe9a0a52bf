"""The LLM router: the nearest examples as few-shot, a JSON-schema structured
answer through any OpenAI-compatible endpoint, and a timeout.

It classifies only (intent, complexity, cache strategy, confidence); the model
always comes from the route table, never from free text. Any failure raises
``RouterError`` with a short reason; the caller answers fail-safe.
"""

import json
from dataclasses import dataclass

import openai

from ai.router.decisions import CacheStrategy, Complexity, Intent, Neighbour

SYSTEM_PROMPT = """You route questions sent to an AI help desk. Classify the user's question.
- intent: "retrieval" needs facts from the company's documents (policies, prices, how-to, account rules);
  "chat" is conversation or small talk; "analysis" needs reasoning, calculation, comparison or several steps;
  "error" is malformed, empty of meaning, or out of scope for a help desk.
  A question that asks for a fact is retrieval even when it says "explain" or "compare two plans' prices";
  it is analysis when the answer must be worked out rather than looked up.
- complexity: "low" (one fact or a short reply), "medium" (a few facts or steps), "high" (multi-step reasoning).
- cache_strategy: "aggressive" (a common question whose answer rarely changes), "standard",
  or "bypass" (personal, time-sensitive or unique: must not be answered from a cache).
- confidence: how likely your intent is right, between 0 and 1.
Labelled examples of this help desk follow."""

SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": [i.value for i in Intent]},
        "complexity": {"type": "string", "enum": [c.value for c in Complexity]},
        "cache_strategy": {"type": "string", "enum": [c.value for c in CacheStrategy]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["intent", "complexity", "cache_strategy", "confidence"],
    "additionalProperties": False,
}


class RouterError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class LLMVerdict:
    intent: Intent
    complexity: Complexity
    cache_strategy: CacheStrategy
    confidence: float
    input_tokens: int
    output_tokens: int


def _messages(query: str, examples: tuple[Neighbour, ...]) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for example in examples:
        answer = {
            "intent": example.intent,
            "complexity": example.complexity,
            "cache_strategy": example.cache_strategy,
            "confidence": 1.0,
        }
        messages.append({"role": "user", "content": example.text})
        messages.append({"role": "assistant", "content": json.dumps(answer)})
    messages.append({"role": "user", "content": query})
    return messages


def llm_route(
    client: openai.OpenAI, *, model: str, query: str, examples: tuple[Neighbour, ...], timeout: float
) -> LLMVerdict:
    try:
        completion = client.with_options(timeout=timeout, max_retries=0).chat.completions.create(
            model=model,
            messages=_messages(query, examples),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "routing_decision", "strict": True, "schema": SCHEMA},
            },
            temperature=0,
        )
    except openai.APITimeoutError as exc:
        raise RouterError("timeout", str(exc)) from exc
    except openai.APIStatusError as exc:
        raise RouterError(f"http_{exc.status_code}", str(exc)[:200]) from exc
    except (openai.APIError, ValueError) as exc:  # connection errors, bodies that are not JSON
        raise RouterError("upstream_error", str(exc)[:200]) from exc
    usage = completion.usage
    try:
        content = completion.choices[0].message.content or ""
        raw = json.loads(content)
        verdict = LLMVerdict(
            intent=Intent(raw["intent"]),
            complexity=Complexity(raw["complexity"]),
            cache_strategy=CacheStrategy(raw["cache_strategy"]),
            confidence=float(raw["confidence"]),
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RouterError("malformed_reply", str(exc)[:200]) from exc
    if not 0.0 <= verdict.confidence <= 1.0:
        raise RouterError("malformed_reply", f"confidence {verdict.confidence} outside [0, 1]")
    return verdict
