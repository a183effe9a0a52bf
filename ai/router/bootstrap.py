"""Router examples bootstrapped from a tenant's own documents, so a tenant is routed by
what it holds from its first question, with no hand-written examples.

A document says what its tenant may be asked: its title (an FAQ's titles are its
questions), its headings, and the questions its text asks. Each becomes a
``retrieval`` example of the tenant, linked to the document: ingestion replaces
them in the transaction that stores the document's chunks (``ai.rag.ingestion``),
and they are deleted with the document (the foreign key cascades). They are shown,
marked, and editable in the admin like any example; an edited one is still replaced
at the document's next ingestion.
"""

import re

from ai.router.decisions import CacheStrategy, Complexity, Intent
from ai.router.models import RouterExample, text_hash

MAX_PER_DOCUMENT = 12
# A tenant's bootstrapped examples live in every worker's memory with their vectors (384
# float32 each: 5,000 are 7.7 MB per worker) and every routed query is compared with them.
MAX_PER_TENANT = 5000
MIN_WORDS = 2
MAX_CHARS = 300
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def document_questions(title: str, content: str) -> list[str]:
    """The title, the headings and the questions of a document, each once, at most MAX_PER_DOCUMENT."""
    found = [title]
    for line in content.splitlines():
        heading = _HEADING.match(line)
        if heading:
            found.append(heading.group(1))
        elif line.strip().endswith("?") and len(line.strip()) <= MAX_CHARS:
            found.append(line)
    for sentence in _SENTENCE_END.split(" ".join(content.split())):
        if sentence.endswith("?") and len(sentence) <= MAX_CHARS:
            found.append(sentence)
    questions, seen = [], set()
    for text in found:
        text = " ".join(text.split()).strip("#*_ ")
        if len(text.split()) >= MIN_WORDS and len(text) <= MAX_CHARS and text.lower() not in seen:
            seen.add(text.lower())
            questions.append(text)
    return questions[:MAX_PER_DOCUMENT]


def document_examples(*, tenant_id: int, document, questions: list[str], vectors, embedder_id: str) -> list:
    """Unsaved examples of ``questions`` (embedded as ``vectors``) for ``document``."""
    note = f"from the document “{document.title}”"[:300]
    return [
        RouterExample(
            tenant_id=tenant_id,
            document_id=document.pk,
            text=text,
            intent=Intent.RETRIEVAL,
            complexity=Complexity.LOW,
            cache_strategy=CacheStrategy.STANDARD,
            note=note,
            text_hash=text_hash(text),
            embedding=vector,
            embedder_id=embedder_id,
        )
        for text, vector in zip(questions, vectors, strict=True)
    ]


def document_examples_replace(*, tenant_id: int, document_id: int, examples: list) -> None:
    """In the caller's transaction and tenant scope: the document's examples become ``examples``.
    A text the tenant already has as an example (an operator's, another document's) keeps that one.
    Past MAX_PER_TENANT bootstrapped examples, a document adds only what room is left (its
    title first): its passages still put queries about it in scope (the router's probe)."""
    mine = RouterExample.objects.for_tenant(tenant_id).filter(document__isnull=False)
    mine.filter(document_id=document_id).delete()
    room = max(0, MAX_PER_TENANT - mine.count())
    RouterExample.objects.for_tenant(tenant_id).bulk_create(examples[:room], ignore_conflicts=True)
