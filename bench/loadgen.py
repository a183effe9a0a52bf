"""The load generator: asyncio + aiohttp, closed loop (N clients, each sends its next
request when the previous answered) or open loop (a fixed offered rate, Poisson
arrivals, latency counted from the scheduled send time so that a slow server
cannot hide its queue).

One record per request: what the client saw (status, latency, the answer's source
and tier, request id, the upstream reference in a miss's answer) and what the
gateway said about itself (its ``latency_ms``, routing, cost).

``api="litellm"`` sends the same calls to the peer, the LiteLLM proxy, as OpenAI
chat completions (bench/peer_litellm.py): its records say hit (the proxy's
``x-litellm-cache-key`` header) or miss, and keep the upstream reference of every
answer in ``answer_ref`` (a hit's names the miss that stored it).
"""

import asyncio
import json
import random
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

_REF = re.compile(r"\[ref (u-\d{6})\]\s*$")


@dataclass
class Record:
    index: int
    tenant: str
    kind: str
    status: int
    started: float  # wall clock (s), for matching upstream calls
    latency_ms: float  # as the client saw it
    source: str = "error"  # exact | semantic | miss | bypass | error
    server_ms: float | None = None
    request_id: str = ""
    ref: str | None = None
    model: str = ""
    intent: str = ""
    strategy: str = ""
    confidence: float | None = None
    similarity: float | None = None
    cost: str = "0"
    stored: str = ""
    answer_ref: str | None = None  # the upstream reference in any answer, a hit's included


@dataclass(frozen=True)
class Call:
    index: int
    tenant: str
    kind: str
    text: str


def _source(status: int, headers, body: dict | None) -> str:
    if status != 200 or body is None:
        return "error"
    tier = (body.get("cache") or {}).get("tier")
    if tier in ("exact", "semantic"):
        return tier
    return "bypass" if headers.get("X-Cache") == "BYPASS" else "miss"


def _record(call: Call, status: int, started: float, latency_ms: float, headers, body: dict | None) -> Record:
    record = Record(call.index, call.tenant, call.kind, status, started, round(latency_ms, 3))
    record.source = _source(status, headers, body)
    if record.source == "error" or body is None:
        return record
    routing = body.get("routing") or {}
    cache = body.get("cache") or {}
    match = _REF.search(body.get("response") or "")
    record.server_ms = body.get("latency_ms")
    record.request_id = body.get("request_id", "")
    record.ref = match.group(1) if match and record.source in ("miss", "bypass") else None
    record.model = body.get("model_used", "")
    record.intent = routing.get("intent", "")
    record.strategy = routing.get("cache_strategy", "")
    record.confidence = routing.get("confidence")
    record.similarity = cache.get("similarity")
    record.cost = (body.get("usage") or {}).get("cost_usd", "0")
    record.stored = cache.get("stored") or ""
    return record


def _record_litellm(call: Call, status: int, started: float, latency_ms: float, headers, body: dict | None) -> Record:
    record = Record(call.index, call.tenant, call.kind, status, started, round(latency_ms, 3))
    if status != 200 or body is None:
        return record
    text = ((body.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    match = _REF.search(text)
    record.answer_ref = match.group(1) if match else None
    record.source = "exact" if headers.get("x-litellm-cache-key") else "miss"  # the bench tells semantic apart
    record.ref = record.answer_ref if record.source == "miss" else None
    record.request_id = f"peer-{call.index}"
    record.model = body.get("model", "")
    return record


async def _send(
    session: aiohttp.ClientSession,
    base: str,
    key: str,
    call: Call,
    cache: str,
    scheduled: float | None,
    api: str = "saascore",
):
    if api == "litellm":
        from peer_litellm import body as litellm_body

        url, payload, make = (
            f"{base}/v1/chat/completions",
            litellm_body(text=call.text, tenant=call.tenant, cache=cache),
            _record_litellm,
        )
    else:
        url, payload, make = f"{base}/api/v1/ai/query", {"query": call.text}, _record
        if cache != "auto":
            payload["cache"] = cache
    headers = {"Authorization": f"Bearer {key}"}
    started_wall = time.time()
    started = scheduled if scheduled is not None else time.perf_counter()
    try:
        async with session.post(url, json=payload, headers=headers) as response:
            raw = await response.read()
            latency_ms = (time.perf_counter() - started) * 1000
            status, response_headers = response.status, response.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        sys.stderr.write(f"request {call.index} failed: {type(exc).__name__}: {exc}\n")
        return Record(call.index, call.tenant, call.kind, 0, started_wall, (time.perf_counter() - started) * 1000)
    try:
        body = json.loads(raw) if status == 200 else None
    except ValueError:
        body = None
    record = make(call, status, started_wall, latency_ms, response_headers, body)
    if record.answer_ref is None and record.ref:
        record.answer_ref = record.ref
    return record


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=30, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))


class CpuMeter:
    """CPU seconds this process (the load generator) spent, per wall second."""

    def __enter__(self) -> "CpuMeter":
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.wall
        self.share = (_cpu() - self.cpu) / self.seconds if self.seconds else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def closed_loop(
    base: str,
    keys: dict[str, str],
    calls: list[Call],
    *,
    clients: int,
    cache: str = "auto",
    progress: Callable[[int, list[Record]], None] | None = None,
    api: str = "saascore",
) -> tuple[list[Record], float]:
    """Send ``calls`` in order with ``clients`` concurrent clients; returns (records, wall seconds)."""
    records: list[Record] = []
    queue = iter(calls)
    started = time.perf_counter()
    async with _session(clients) as session:

        async def client() -> None:
            for call in queue:
                records.append(await _send(session, base, keys[call.tenant], call, cache, None, api))
                if progress:
                    progress(len(records), records)

        await asyncio.gather(*(client() for _ in range(clients)))
    return sorted(records, key=lambda r: r.index), time.perf_counter() - started


async def open_loop(
    base: str,
    keys: dict[str, str],
    next_call: Callable[[int], Call],
    *,
    rate: float,
    seconds: float,
    max_in_flight: int = 256,
    seed: int = 0,
    api: str = "saascore",
) -> tuple[list[Record], float, int]:
    """Offer ``rate`` requests a second (Poisson) for ``seconds``; returns (records, wall seconds, dropped).

    A request that would exceed ``max_in_flight`` is not sent and counted as dropped.
    """
    rng = random.Random(seed)
    records: list[Record] = []
    tasks: set[asyncio.Task] = set()
    dropped = 0
    async with _session(max_in_flight) as session:
        began = time.perf_counter()
        due = began
        index = 0
        while due - began < seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= max_in_flight:
                dropped += 1
            else:
                call = next_call(index)
                task = asyncio.create_task(_send(session, base, keys[call.tenant], call, "auto", due, api))
                tasks.add(task)
                task.add_done_callback(lambda t: (tasks.discard(t), records.append(t.result())))
            index += 1
            due += rng.expovariate(rate)
        if tasks:
            await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return records, wall, dropped
