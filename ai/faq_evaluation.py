"""End to end on an FAQ tenant (``manage.py eval_e2e``): what a new customer who loads its FAQ
gets from its first questions, over the real pipeline (``ai.pipeline.answer_query``, the code
the API runs), with no hand-written router examples.

1. A fresh tenant loads the FAQ through ``load_jsonl`` (questions become document titles).
2. Every FAQ question of the pairs is asked once: its answer fills the cache.
3. Every second question of the pairs is asked once. A cache hit is right when the cached
   question that answered it (the ledger's ``cached_question``) is the FAQ question it
   rephrases: its own pair's ``question_1`` in a similar pair, or, for a dissimilar pair, the
   entry a similar pair gives it (none: every hit of it is wrong).
4. ``--oos`` questions (no FAQ entry covers them) are asked once: refused (routed out of
   scope) or bypassed (the cache not used) counts as refused.

Rates over the rephrasings (the second questions of similar pairs): in scope (not routed out
of scope), hit recall (a hit from the right entry), right document (the answer, hit or not,
cites the right entry first). Hit precision is over every hit of a second question. The
router's calibration error is over the rephrasings (right: in scope) and the ``--oos``
questions (right: out of scope), where the router decided (exact hits are not routed).
"""

import asyncio
import csv
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ai.pipeline import answer_query
from ai.router.evaluation import expected_calibration_error
from billing.models import UsageRecord
from saascore.pools import in_db
from tenants.models import Tenant
from tenants.scoping import tenant_scope


@dataclass(frozen=True)
class Pair:
    question_1: str
    question_2: str
    similar: bool


@dataclass
class Asked:
    question: str
    hit: str | None  # "exact" | "semantic" | None
    cached_question: str | None  # a hit's cached question
    document: str | None  # title of the first cited document
    out_of_scope: bool
    bypassed: bool
    confidence: float | None


@dataclass
class Run:
    faq: list[str] = field(default_factory=list)
    second: dict[str, Asked] = field(default_factory=dict)
    oos: list[Asked] = field(default_factory=list)


def read_faq(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    missing = [n for n, row in enumerate(rows, 1) if not row.get("question") or not row.get("answer")]
    if missing:
        raise ValueError(f"{path}: lines {missing[:5]} lack a question or an answer")
    return rows


def read_pairs(path: Path) -> list[Pair]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's BOM is not a header
        reader = csv.DictReader(handle)
        if not {"question_1", "question_2", "similar"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: the header must name question_1,question_2,similar")
        return [
            Pair(row["question_1"].strip(), row["question_2"].strip(), row["similar"].strip().lower() in TRUE)
            for row in reader
            if row["question_1"].strip() and row["question_2"].strip()
        ]


TRUE = {"1", "true", "yes", "y", "t"}


def read_oos(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def entries_of(pairs: list[Pair]) -> dict[str, str]:
    """Second question -> the FAQ question it rephrases (from the similar pairs), as ``same_text`` keys it."""
    return {p.question_2: same_text(p.question_1) for p in pairs if p.similar}


def same_text(text: str | None) -> str | None:
    """A title as compared with a pair's question: whitespace (newlines, no-break spaces) collapsed."""
    return " ".join(text.split()) if text is not None else None


def _cached_question(tenant: Tenant, request_id: str) -> str:
    with tenant_scope(tenant):
        return UsageRecord.objects.for_tenant(tenant).get(request_id=request_id).cached_question


async def _ask(tenant: Tenant, question: str) -> Asked:
    request_id = str(uuid.uuid4())
    result = await answer_query(tenant=tenant, query=question, user_id=None, request_id=request_id)
    routing = result.routing or {}
    tier = result.cache.get("tier")
    return Asked(
        question=question,
        hit=tier,
        cached_question=same_text(await in_db(_cached_question, tenant, request_id)) if tier else None,
        document=same_text(result.citations[0]["document"]) if result.citations else None,
        out_of_scope=routing.get("intent") == "error",
        bypassed=result.source == "llm" and result.cache.get("threshold") is None,
        confidence=routing.get("confidence"),
    )


async def ask_all(tenant: Tenant, pairs: list[Pair], oos: list[str], progress: Callable[[int, int], None]) -> Run:
    run = Run()
    faq = list(dict.fromkeys(p.question_1 for p in pairs))
    seconds = list(dict.fromkeys(p.question_2 for p in pairs))
    total, done = len(faq) + len(seconds) + len(oos), 0
    for question in faq:
        await _ask(tenant, question)
        run.faq.append(question)
        done += 1
        progress(done, total)
    for question in seconds:
        run.second[question] = await _ask(tenant, question)
        done += 1
        progress(done, total)
    for question in oos:
        run.oos.append(await _ask(tenant, question))
        done += 1
        progress(done, total)
    return run


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def summarise(pairs: list[Pair], run: Run) -> dict:
    entry = entries_of(pairs)
    rephrasings = [run.second[q] for q in entry if q in run.second]
    hits = [a for a in run.second.values() if a.hit]
    right_hits = [a for a in hits if a.cached_question is not None and a.cached_question == entry.get(a.question)]
    confidences, correct = [], []
    for asked, right in [(a, not a.out_of_scope) for a in rephrasings] + [(a, a.out_of_scope) for a in run.oos]:
        if asked.confidence is not None:
            confidences.append(asked.confidence)
            correct.append(float(right))
    return {
        "pairs": len(pairs),
        "similar_pairs": sum(p.similar for p in pairs),
        "faq_questions_asked": len(run.faq),
        "second_questions_asked": len(run.second),
        "in_scope_rate": _rate(sum(not a.out_of_scope for a in rephrasings), len(rephrasings)),
        "hits": len(hits),
        "hits_by_tier": {tier: sum(a.hit == tier for a in hits) for tier in ("exact", "semantic")},
        "hit_precision": _rate(len(right_hits), len(hits)),
        "hit_recall": _rate(sum(1 for a in right_hits if a.question in entry), len(rephrasings)),
        "right_document_rate": _rate(sum(a.document == entry[a.question] for a in rephrasings), len(rephrasings)),
        "oos_asked": len(run.oos),
        "oos_refused_rate": _rate(sum(a.out_of_scope or a.bypassed for a in run.oos), len(run.oos))
        if run.oos
        else None,
        "router_calibration_error": (
            round(expected_calibration_error(np.array(confidences), np.array(correct)), 4) if confidences else None
        ),
    }


def evaluate(tenant: Tenant, pairs: list[Pair], oos: list[str], progress: Callable[[int, int], None]) -> dict:
    return summarise(pairs, asyncio.run(ask_all(tenant, pairs, oos, progress)))
