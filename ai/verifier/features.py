"""Pair features for the hit verifier: how two questions line up, word by word.

Sentence cosine misses the one word that changes a question ("Ealing vs
Haringey" against "Ealing vs Bexley"). These features look at the tokens: each
token's best match in the other text under the embedder's contextual states
(BERTScore-style, weighted by how rare the token is), plus lexical overlap.
Features an embedder cannot give (token states from a remote API) are -1, the
same at training and at scoring: a verifier only scores with the embedder it
was trained with.
"""

import difflib
import re
from collections.abc import Sequence

import numpy as np

from ai.cache.judge import negated, numbers

FEATURE_VERSION = 1

_WORD = re.compile(r"[a-z0-9]+")
_QUESTION_WORDS = frozenset(
    "what how why which who whom whose when where is are was were can could do does did should would will".split()
)
_STOPWORDS = _QUESTION_WORDS | frozenset(
    "a an the of to in on for and or but with by from at as it its this that these those i me my we our you your "
    "he she they them their be been being have has had there than then so if about into over under more most "
    "some any all each other such only own same too very just also get best good way".split()
)

FEATURE_NAMES = (
    "cosine",
    "align_ab_mean",
    "align_ba_mean",
    "align_f",
    "align_idf_f",
    "align_ab_min",
    "align_ba_min",
    "align_ab_p10",
    "align_ba_p10",
    "unmatched_idf_ab",
    "unmatched_idf_ba",
    "weak_share_ab",
    "weak_share_ba",
    "tokens_a",
    "tokens_b",
    "token_ratio",
    "word_jaccard",
    "word_overlap",
    "content_jaccard",
    "content_only_a",
    "content_only_b",
    "idf_overlap",
    "idf_only_max",
    "first_word_same",
    "question_words_same",
    "numbers_same",
    "negation_same",
    "char_ratio",
    "sorted_ratio",
    "trigram_jaccard",
    "same_normalised",
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TokenStates:
    """Contextual token vectors of texts, from a local ONNX embedder (memoised there: a query's
    come from the forward pass that embedded it)."""

    def __init__(self, embedder) -> None:
        embedder = getattr(embedder, "inner", embedder)  # through the memo to the model
        self.embedder = embedder
        self.available = hasattr(embedder, "token_states")

    def __call__(self, texts: Sequence[str], batch: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (token ids, unit token vectors) without the special tokens."""
        return self.embedder.token_states(list(texts), batch)


class Idf:
    """Inverse document frequency of words and of token ids, learned from texts."""

    def __init__(self, words_idf: dict[str, float], tokens_idf: np.ndarray, unseen: float) -> None:
        self.words_idf = words_idf
        self.tokens_idf = tokens_idf
        self.unseen = unseen

    @classmethod
    def fit(cls, texts: Sequence[str], token_ids: Sequence[np.ndarray], vocab_size: int = 30522) -> "Idf":
        n = max(len(texts), 1)
        word_df: dict[str, int] = {}
        for text in texts:
            for word in set(words(text)):
                word_df[word] = word_df.get(word, 0) + 1
        token_df = np.zeros(vocab_size, dtype=np.float64)
        for ids in token_ids:
            token_df[np.unique(ids[ids < vocab_size])] += 1
        unseen = float(np.log((n + 1) / 1))
        words_idf = {w: float(np.log((n + 1) / (df + 1))) for w, df in word_df.items() if df > 1}
        tokens_idf = np.log((n + 1) / (token_df + 1)).astype(np.float32)
        return cls(words_idf, tokens_idf, unseen)

    def word(self, word: str) -> float:
        return self.words_idf.get(word, self.unseen)

    def tokens(self, ids: np.ndarray) -> np.ndarray:
        ids = np.clip(ids, 0, len(self.tokens_idf) - 1)
        return self.tokens_idf[ids]


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) without its overhead, for short vectors."""
    ordered = np.sort(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _alignment(a: tuple[np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray] | None, idf: Idf) -> list:
    if a is None or b is None:
        return [-1.0] * 12
    (ids_a, va), (ids_b, vb) = a, b
    sims = va @ vb.T
    best_ab, best_ba = sims.max(axis=1), sims.max(axis=0)
    w_a, w_b = idf.tokens(ids_a), idf.tokens(ids_b)
    recall_idf = float((best_ab * w_a).sum() / max(w_a.sum(), 1e-9))
    precision_idf = float((best_ba * w_b).sum() / max(w_b.sum(), 1e-9))
    mean_ab, mean_ba = float(best_ab.mean()), float(best_ba.mean())
    return [
        mean_ab,
        mean_ba,
        2 * mean_ab * mean_ba / max(mean_ab + mean_ba, 1e-9),
        2 * recall_idf * precision_idf / max(recall_idf + precision_idf, 1e-9),
        float(best_ab.min()),
        float(best_ba.min()),
        _percentile(best_ab, 10),
        _percentile(best_ba, 10),
        float((w_a * (1 - best_ab)).max()),
        float((w_b * (1 - best_ba)).max()),
        float((best_ab < 0.6).mean()),
        float((best_ba < 0.6).mean()),
    ]


def _lexical(text_a: str, text_b: str, idf: Idf) -> list:
    words_a, words_b = words(text_a), words(text_b)
    set_a, set_b = set(words_a), set(words_b)
    content_a, content_b = set_a - _STOPWORDS, set_b - _STOPWORDS
    union, common = set_a | set_b, set_a & set_b
    content_union = content_a | content_b
    only = (content_a ^ content_b) or {""}
    union_idf = sum(idf.word(w) for w in union) or 1e-9
    grams_a = {text_a.lower()[i : i + 3] for i in range(max(len(text_a) - 2, 1))}
    grams_b = {text_b.lower()[i : i + 3] for i in range(max(len(text_b) - 2, 1))}
    return [
        len(words_a),
        len(words_b),
        min(len(words_a), len(words_b)) / max(len(words_a), len(words_b), 1),
        len(common) / max(len(union), 1),
        len(common) / max(min(len(set_a), len(set_b)), 1),
        len(content_a & content_b) / max(len(content_union), 1),
        len(content_a - content_b),
        len(content_b - content_a),
        sum(idf.word(w) for w in common) / union_idf,
        max(idf.word(w) if w else 0.0 for w in only),
        float(words_a[:1] == words_b[:1]),
        float((set_a & _QUESTION_WORDS) == (set_b & _QUESTION_WORDS)),
        float(numbers(text_a) == numbers(text_b)),
        float(negated(text_a) == negated(text_b)),
        difflib.SequenceMatcher(None, text_a.lower(), text_b.lower()).ratio(),
        difflib.SequenceMatcher(None, " ".join(sorted(words_a)), " ".join(sorted(words_b))).ratio(),
        len(grams_a & grams_b) / max(len(grams_a | grams_b), 1),
        float(words_a == words_b),
    ]


def pair_features(
    pairs: Sequence[tuple[str, str]],
    cosines: Sequence[float],
    states: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    idf: Idf,
) -> np.ndarray:
    """One row of ``FEATURE_NAMES`` per pair; ``states`` maps a text to its token states (or None)."""
    rows = []
    for (text_a, text_b), cosine in zip(pairs, cosines, strict=True):
        a = states.get(text_a) if states else None
        b = states.get(text_b) if states else None
        rows.append([float(cosine), *_alignment(a, b, idf), *_lexical(text_a, text_b, idf)])
    features = np.asarray(rows, dtype=np.float32)
    assert features.shape[1] == len(FEATURE_NAMES)
    return features
