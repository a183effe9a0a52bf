"""The cross-encoder verifier as it serves: an ONNX graph run by onnxruntime.

A cross-encoder reads both questions at once ("[CLS] a [SEP] b [SEP]") and gives
one logit for "the same question". It is fine-tuned from all-MiniLM-L6-v2 by
``ai/verifier/crosstrain.py`` (PyTorch, requirements-train.txt) and exported to
ONNX; this module needs only onnxruntime, tokenizers and numpy, and imports no
PyTorch.

``CrossEncoderVerifier`` is what a ``VerifierModel`` row's blob holds for this
kind (pickled like ``TrainedVerifier``, with the same ``scores`` signature, so
``PairVerifier`` and the live cache use either): the ONNX bytes, the tokenizer
it was trained with, optionally the boosting verifier it is ensembled with
(their logits mixed by fitted weights) and the cutoff fitted on held-out pairs.
Guarantees: the graph it runs is the one whose sha256 it was stored with, on one
intra-op thread. Not guaranteed: that it suits another embedder than the one it
was trained beside (the live cache checks ``embedder_id`` as for any verifier).
"""

import hashlib
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

KIND = "cross-encoder"
FORMAT_VERSION = 1
MAX_TOKENS = 128


class PairTokenizer:
    """Token ids, attention mask and segment ids of question pairs, padded to the batch's longest."""

    def __init__(self, tokenizer_json: str, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch([(a, b) for a, b in pairs])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            types[row, : len(e.ids)] = e.type_ids
        return ids, mask, types


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class OnnxPairScorer:
    """One onnxruntime session over a cross-encoder graph: logits of pairs."""

    def __init__(self, onnx: bytes, tokenizer_json: str, max_tokens: int = MAX_TOKENS, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])
        self._tokenize = PairTokenizer(tokenizer_json, max_tokens)

    def logits(self, pairs: Sequence[tuple[str, str]], batch: int = 64, *, both_orders: bool = False) -> np.ndarray:
        """One logit per pair; with ``both_orders``, the mean of (a, b)'s and (b, a)'s (in the same batches)."""
        if both_orders:
            both = self.logits([*pairs, *((b, a) for a, b in pairs)], batch)
            return (both[: len(pairs)] + both[len(pairs) :]) / 2
        if not pairs:
            return np.zeros(0)
        # Batches of similar length waste less padding.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = np.zeros(len(pairs), dtype=np.float64)
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            ids, mask, types = self._tokenize([pairs[i] for i in chosen])
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[chosen] = self._session.run(None, feed)[0].reshape(-1)
        return out


@dataclass
class CrossEncoderVerifier:
    """A fine-tuned cross-encoder, alone or ensembled with the boosting verifier, picklable as one object.

    Score = sigmoid(w_cross * cross logit + w_boost * boosting logit + bias); the weights are fitted on the
    fit share (``mix``), the cutoff ``min_score`` on the held-out share.
    """

    onnx: bytes
    tokenizer_json: str
    embedder_id: str
    min_score: float
    mix: tuple[float, float, float] = (1.0, 0.0, 0.0)  # (w_cross, w_boost, bias)
    boosting: object | None = None  # a TrainedVerifier when ensembled
    max_tokens: int = MAX_TOKENS
    both_orders: bool = False  # score (a, b) and (b, a) and take the mean; models before it scored (a, b)
    report: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # the held-out logits (ai/verifier/crosscalibrate.py)
    kind: str = KIND
    format_version: int = FORMAT_VERSION
    onnx_sha256: str = ""

    def __post_init__(self) -> None:
        self.onnx_sha256 = self.onnx_sha256 or hashlib.sha256(self.onnx).hexdigest()
        self._scorer: OnnxPairScorer | None = None
        self._lock = threading.Lock()

    # Checked by TrainedVerifier.from_bytes, like a boosting verifier's.
    @property
    def feature_version(self) -> int:
        from ai.verifier.features import FEATURE_VERSION

        return self.boosting.feature_version if self.boosting is not None else FEATURE_VERSION

    @property
    def sklearn_version(self) -> str:
        if self.boosting is not None:
            return self.boosting.sklearn_version
        import sklearn

        return sklearn.__version__

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_scorer", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"cross-encoder verifier format v{self.format_version}, this code reads v{FORMAT_VERSION}")
        if hashlib.sha256(self.onnx).hexdigest() != self.onnx_sha256:
            raise ValueError("cross-encoder verifier: its ONNX bytes do not match their sha256")
        self._scorer = None
        self._lock = threading.Lock()
        self.scorer()  # load the graph now (on the loading thread), not on the first borderline hit

    def scorer(self) -> OnnxPairScorer:
        with self._lock:
            if self._scorer is None:
                self._scorer = OnnxPairScorer(self.onnx, self.tokenizer_json, self.max_tokens)
            return self._scorer

    def components(self, pairs: Sequence[tuple[str, str]], cosines: Sequence[float], embedder) -> np.ndarray:
        """Per pair: (cross-encoder logit, boosting logit or 0)."""
        cross = self.scorer().logits(pairs, both_orders=self.both_orders)
        boost = np.zeros(len(pairs))
        if self.boosting is not None and self.mix[1] != 0.0 and len(pairs):
            boost = logit(self.boosting.scores(pairs, cosines, embedder))
        return np.stack([cross, boost], axis=1) if len(pairs) else np.zeros((0, 2))

    def combine(self, components: np.ndarray) -> np.ndarray:
        w_cross, w_boost, bias = self.mix
        return sigmoid(w_cross * components[:, 0] + w_boost * components[:, 1] + bias)

    def scores(self, pairs: Sequence[tuple[str, str]], cosines: Sequence[float], embedder) -> np.ndarray:
        """Probability that each pair asks the same question."""
        if not pairs:
            return np.zeros(0)
        return self.combine(self.components(pairs, cosines, embedder))

    def to_bytes(self) -> bytes:
        """The row's blob; ``TrainedVerifier.from_bytes`` reads it back (one loader for both kinds)."""
        return pickle.dumps(self, protocol=5)
