import numpy as np
import pytest

from ai.embeddings import build_embedder
from ai.embeddings.local import local_embedder
from ai.embeddings.memo import MemoEmbedder
from tests.openai_server import OpenAIServer


@pytest.fixture(scope="module")
def minilm():
    return local_embedder()


def test_local_embedder_gives_unit_float32_vectors(minilm):
    result = minilm.embed(["How do I reset my password?", "What is your refund policy?"])
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.id == "local:all-minilm-l6-v2" and minilm.dim == 384


def test_paraphrases_are_closer_than_unrelated_questions(minilm):
    v = minilm.embed(["How do I reset my password?", "How can I change my password?", "What is the capital of France?"])
    similarity = v.vectors @ v.vectors.T
    assert similarity[0, 1] > 0.8 > 0.3 > similarity[0, 2]


def test_inputs_are_not_padded_to_a_fixed_length(minilm):
    ids, mask = minilm.encode(["How do I reset my password on the billing dashboard page today?"])
    assert ids.shape == (1, 15) and mask.sum() == 15
    ids, _ = minilm.encode(["short", "a somewhat longer question about invoices"])
    assert ids.shape[1] < 16


def test_a_batch_embeds_like_single_texts(minilm):
    texts = ["one question", "another, much longer question about the enterprise plan"]
    batch = minilm.embed(texts).vectors
    singles = np.stack([minilm.embed([t]).vectors[0] for t in texts])
    assert np.allclose(batch, singles, atol=1e-4)


def test_memo_reuses_recent_embeddings(minilm):
    memo = MemoEmbedder(minilm, size=2)
    first = memo.embed(["a", "b"]).vectors
    again = memo.embed(["b", "a"])
    assert memo.hits == 2 and again.input_tokens == 0
    assert np.array_equal(again.vectors, first[::-1])
    memo.embed(["c"])  # evicts the least recently used: "b" (the last call used "a" after it)
    memo.embed(["a"])
    assert memo.hits == 3
    memo.embed(["b"])
    assert memo.hits == 3


def test_memo_is_per_tenant(minilm):
    """A memoised text is faster and counts no tokens: shared, it would tell a tenant what another's users asked."""
    memo = MemoEmbedder(minilm, size=8)
    asked = memo.embed(["Has Jane's mortgage been approved?"], tenant_id=1)
    probed = memo.embed(["Has Jane's mortgage been approved?"], tenant_id=2)
    assert memo.hits == 0 and probed.input_tokens == asked.input_tokens > 0
    assert memo.embed(["Has Jane's mortgage been approved?"], tenant_id=1).input_tokens == 0  # its own repeat


def test_openai_compatible_embedder_through_the_real_client():
    with OpenAIServer(embedding_dim=48) as server:
        embedder = build_embedder(
            {"backend": "openai", "model": "text-embedding-3-small", "base_url": server.base_url, "dimensions": 48}
        )
        result = embedder.embed(["first text", "second text here"])
        assert result.vectors.shape == (2, 48) and embedder.dim == 48
        assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
        assert result.input_tokens == 5
        assert embedder.id == "openai:text-embedding-3-small:48"
        sent = server.requests[-1]["body"]
        assert sent["model"] == "text-embedding-3-small" and sent["dimensions"] == 48
