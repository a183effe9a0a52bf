"""Fine-tune the cross-encoder verifier, export it to ONNX, calibrate it (training only: PyTorch).

``fit_cross_encoder`` holds out the same calibration share as ``fit_verifier``
(same seed, same rows), fine-tunes all-MiniLM-L6-v2 as a cross-encoder on the
rest (each pair in both orders), exports the graph to ONNX (int8 when asked),
and, when ensembling, trains the boosting verifier on the same rows. On the
held-out share it fits how the two logits mix (a logistic regression of three
numbers) and the lowest cutoff whose precision reaches the target among the
pairs the cache would ask about. Nothing here is imported by the serving path.
"""

import io
import logging
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ai.cache.evaluation import stderr_progress
from ai.cache.judge import guard_veto
from ai.verifier.crosscalibrate import calibrate
from ai.verifier.crossencoder import CrossEncoderVerifier, OnnxPairScorer, PairTokenizer, logit
from ai.verifier.crossnet import CrossEncoder, pretrained, tokenizer_json
from ai.verifier.learn import fit_verifier
from ai.verifier.statememo import memoised

Pairs = Sequence[tuple[str, str]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    learning_rate: float = 5e-5
    batch: int = 32
    warmup: float = 0.1  # share of the steps
    weight_decay: float = 0.01
    max_tokens: int = 64
    pooling: str = "mean"
    symmetric: bool = True  # train on (a, b) and (b, a)
    both_orders: bool = False  # serve the mean of both orders' logits (+0.002 held-out AUC for twice the cost)
    int8: bool = True
    freeze_word_embeddings: bool = True  # half the optimiser's work; QQP's words are in the vocabulary
    freeze_layers: int = 0  # the lowest N transformer layers stay as pretrained (a cheaper backward pass)
    threads: int = 1  # two threads on two shared cores ran slower than one
    seed: int = 0


def _batches(lengths: np.ndarray, batch: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (less padding), in a shuffled order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    return batches


def train_cross_encoder(
    pairs: Pairs, labels: Sequence[int], config: TrainConfig, progress: Progress | None = None
) -> CrossEncoder:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    examples = list(zip(pairs, labels, strict=True))
    if config.symmetric:
        examples += [((b, a), y) for (a, b), y in examples]
    ids, mask, types = PairTokenizer(tokenizer_json(), config.max_tokens)([p for p, _ in examples])
    targets = torch.tensor([float(y) for _, y in examples])
    lengths = mask.sum(axis=1)
    ids_t, mask_t, types_t = torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)

    model = pretrained(config.pooling).train()
    model.embeddings.word_embeddings.weight.requires_grad_(not config.freeze_word_embeddings)
    if config.freeze_layers:
        model.embeddings.requires_grad_(False)
        for layer in model.encoder.layer[: config.freeze_layers]:
            layer.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim > 1]
    no_decay = [p for p in trained if p.ndim <= 1]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    steps = config.epochs * math.ceil(len(examples) / config.batch)
    warmup = max(int(steps * config.warmup), 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(steps - warmup, 1)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    step, started, running = 0, time.monotonic(), []
    for epoch in range(config.epochs):
        for rows in _batches(lengths, config.batch, rng):
            width = int(lengths[rows].max())
            logits = model(ids_t[rows, :width], mask_t[rows, :width], types_t[rows, :width])
            loss = loss_fn(logits, targets[rows])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            running.append(loss.item())
            if progress and (step % 50 == 0 or step == steps):
                elapsed = time.monotonic() - started
                progress(
                    f"cross-encoder: epoch {epoch + 1}/{config.epochs}, step {step}/{steps}, "
                    f"loss {np.mean(running[-50:]):.4f}, {elapsed / 60:.1f} min, "
                    f"~{elapsed / step * (steps - step) / 60:.1f} min left"
                )
    return model.eval()


def export_onnx(model: CrossEncoder) -> bytes:
    """The model as an fp32 ONNX graph with dynamic batch and length."""
    model = model.eval()
    sample = (torch.ones(2, 8, dtype=torch.int64),) * 2 + (torch.zeros(2, 8, dtype=torch.int64),)
    buffer = io.BytesIO()
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            model,
            sample,
            buffer,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def quantise_int8(onnx: bytes) -> bytes:
    """Weights to int8 per channel, activations quantised on the fly (onnxruntime's dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs every tensor at INFO on the root logger
    try:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
            source.write_bytes(onnx)
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
            return target.read_bytes()
    finally:
        root.setLevel(level)


def split_rows(count: int, calibration_share: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit rows, held-out rows): the same split as ``fit_verifier``."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    held = set(order[: max(int(count * calibration_share), 10)])
    return [i for i in range(count) if i not in held], sorted(held)


def pair_cosines(embedder, pairs: Pairs, progress: Progress | None = None) -> np.ndarray:
    """Cosine of each pair's two sentence vectors, every distinct text embedded once."""
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    report = stderr_progress("embedding the training pairs") if progress else None
    vectors = {}
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        vectors.update(zip(chunk, embedder.embed(chunk).vectors, strict=True))
        if report:
            report(min(start + 64, len(texts)), len(texts))
    return np.array([float(vectors[a] @ vectors[b]) for a, b in pairs], dtype=np.float32)


def fit_cross_encoder(
    pairs: Pairs,
    labels: Sequence[int],
    embedder,
    *,
    config: TrainConfig = TrainConfig(),
    ensemble: bool = True,
    target_precision: float = 0.85,
    min_similarity: float = 0.80,
    calibration_share: float = 0.2,
    seed: int = 0,
    progress: Progress | None = None,
) -> CrossEncoderVerifier:
    labels_array = np.asarray(labels, dtype=np.int64)
    if len(pairs) < 50 or len(set(labels_array.tolist())) < 2:
        raise ValueError("The verifier needs at least 50 labelled pairs of both kinds")
    fit_rows, cal_rows = split_rows(len(pairs), calibration_share, seed)
    held_pairs = [pairs[i] for i in cal_rows]
    memo = memoised(embedder)

    def embedder_side() -> tuple[np.ndarray, object, np.ndarray]:
        """The embedder's work (cosines, the boosting verifier, its held-out logits): one pass per text."""
        cosines = pair_cosines(memo, pairs, progress)
        if not ensemble:
            return cosines, None, np.zeros(len(cal_rows))
        boosting = fit_verifier(
            pairs, labels, cosines, memo, target_precision=target_precision, min_similarity=min_similarity,
            calibration_share=calibration_share, seed=seed,
            progress=stderr_progress("token states of the training pairs") if progress else None,
        )  # fmt: skip
        return cosines, boosting, logit(boosting.scores(held_pairs, cosines[cal_rows], memo))

    # Two cores: onnxruntime embeds on a second thread while PyTorch trains (both release the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verifier-features") as pool:
        side = pool.submit(embedder_side)
        started = time.monotonic()
        model = train_cross_encoder([pairs[i] for i in fit_rows], labels_array[fit_rows], config, progress)
        train_minutes = (time.monotonic() - started) / 60
        fp32 = export_onnx(model)
        onnx = quantise_int8(fp32) if config.int8 else fp32
        scorer = OnnxPairScorer(onnx, tokenizer_json(), config.max_tokens)
        one_order = scorer.logits(held_pairs)
        both = scorer.logits(held_pairs, both_orders=True)  # reported, served with config.both_orders
        cross = both if config.both_orders else one_order
        cosines, boosting, boost = side.result()

    asked = [cosines[i] >= min_similarity and not guard_veto(*pairs[i]) for i in cal_rows]
    untrained = CrossEncoderVerifier(
        onnx=onnx, tokenizer_json=tokenizer_json(), embedder_id=embedder.id, min_score=1.0, boosting=boosting,
        max_tokens=config.max_tokens, both_orders=config.both_orders,
    )  # fmt: skip
    untrained.report = {
        "kind": "cross-encoder" + (" + boosting" if boosting else ""),
        "pairs": len(pairs),
        "positives": int(labels_array.sum()),
        "fit_pairs": len(fit_rows),
        "calibration_pairs": len(cal_rows),
        "min_similarity": min_similarity,
        "train_minutes": round(train_minutes, 1),
        "onnx_bytes": len(onnx),
        "onnx_sha256": untrained.onnx_sha256,
        "config": asdict(config),
    }
    # What quantising and scoring both orders gained, measured on the held-out share.
    from sklearn.metrics import roc_auc_score

    def auc(logits: np.ndarray) -> float:
        return round(float(roc_auc_score(labels_array[cal_rows], logits)), 4)

    served = "int8" if config.int8 else "fp32"
    untrained.report["held_out_auc"] = {served: auc(one_order), f"{served}_both_orders": auc(both)}
    if config.int8:
        unquantised = OnnxPairScorer(fp32, tokenizer_json(), config.max_tokens)
        untrained.report["held_out_auc"]["fp32"] = auc(unquantised.logits(held_pairs))
    components = np.stack([cross, boost], axis=1)
    return calibrate(
        untrained, components, labels_array[cal_rows], asked, target_precision=target_precision,
        use="ensemble" if boosting else "cross",
    )  # fmt: skip


def fit_cross_encoder_on_pairs(pairs: Sequence, embedder, **options) -> CrossEncoderVerifier:
    """``fit_cross_encoder`` on labelled ``Pair``s, with progress on stderr."""

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return fit_cross_encoder(
        [(p.text_a, p.text_b) for p in pairs], [p.label for p in pairs], embedder, progress=say, **options
    )
