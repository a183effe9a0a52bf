"""Split a document into overlapping windows of tokens (the embedder's own tokens)."""

from dataclasses import dataclass

from ai.embeddings.local import local_embedder


@dataclass(frozen=True)
class TextChunk:
    position: int
    text: str
    token_count: int


def chunk_text(text: str, *, size: int, overlap: int) -> list[TextChunk]:
    """Windows of ``size`` tokens, each sharing ``overlap`` tokens with the previous one.

    Chunk text is cut at token boundaries of the original string, so it keeps its
    spacing and punctuation.
    """
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    spans = local_embedder().token_spans(text)
    if not spans:
        return []
    chunks, start, step = [], 0, size - overlap
    while True:
        window = spans[start : start + size]
        chunks.append(TextChunk(len(chunks), text[window[0][0] : window[-1][1]].strip(), len(window)))
        if start + size >= len(spans):
            return chunks
        start += step
