"""The local extractive answerer: no network, price 0.

It answers with the sentences of the retrieved chunks that share the most
words with the question, and says so plainly when the documents hold no answer.
"""

import re
from dataclasses import dataclass

from ai.rag.retrieval import RetrievedChunk

MODEL = "local-extractive"
NO_ANSWER = "The documents available to me do not answer this question."
MIN_SCORE = 0.35  # chunk similarity under which nothing retrieved is relevant
MAX_SENTENCES = 3
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    "a an and are as at be by can do does for from how i if in is it my of on or the this to what when where which "
    "who why will with you your".split()
)


@dataclass(frozen=True)
class Extract:
    text: str
    used: list[RetrievedChunk]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def extract_answer(query: str, chunks: list[RetrievedChunk]) -> Extract:
    relevant = [c for c in chunks if c.score >= MIN_SCORE]
    if not relevant:
        return Extract(NO_ANSWER, [])
    wanted = _words(query)
    scored = []
    for rank, chunk in enumerate(relevant[:3]):
        for order, sentence in enumerate(_SENTENCE.split(chunk.text)):
            overlap = len(wanted & _words(sentence))
            if overlap and len(sentence) > 20:
                scored.append((overlap + chunk.score, -rank, -order, sentence.strip(), chunk))
    if not scored:
        best = relevant[0]
        return Extract(" ".join(_SENTENCE.split(best.text)[:MAX_SENTENCES]), [best])
    top = sorted(scored, reverse=True)[:MAX_SENTENCES]
    top.sort(key=lambda s: (s[1], s[2]), reverse=True)  # document order reads better
    used = list({id(s[4]): s[4] for s in top}.values())
    return Extract(" ".join(s[3] for s in top), used)
