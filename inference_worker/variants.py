"""Loading a variant from the manifest and running one batch on it.

A `LoadedVariant` owns the model (on its device) and a tokenizer; `predict` tokenizes a
batch of texts, runs the forward pass and returns one `Prediction` per text. It is called from
the worker's single compute thread (and from the loader thread while warming), never on the
event loop.
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one compute thread: no rayon pool

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn

from inference_worker.cuda_graphs import GraphedForward
from inference_worker.manifest import Manifest, ManifestError, VariantSpec
from slo_contracts.runtime import MAX_BATCH_SIZE

WARM_TEXT = "the service was quick and the staff were friendly, i would come back again"


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "scores": self.scores}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda when available; otherwise the named device (cpu, cuda, cuda:1)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: only cpu and cuda are supported")
    return device


def make_tokenizer(manifest: Manifest, device: torch.device) -> Tokenizer:
    tok = Tokenizer.from_file(str(manifest.tokenizer))
    pad_id = tok.token_to_id("[PAD]")
    # pad to the longest text of the batch; on CUDA round up to a multiple of 8 (tensor cores,
    # fewer distinct shapes)
    tok.enable_padding(
        pad_id=0 if pad_id is None else pad_id,
        pad_token="[PAD]",
        pad_to_multiple_of=8 if device.type == "cuda" else None,
    )
    tok.enable_truncation(manifest.max_length)
    return tok


def import_factory(path: str) -> Callable[..., nn.Module]:
    module_name, attr = path.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ManifestError(f"module {path!r} cannot be imported: {exc}") from None
    if not callable(factory):
        raise ManifestError(f"module {path!r} is not callable")
    return factory


def apply_recipe(model: nn.Module, recipe: str | None, device: torch.device) -> nn.Module:
    """Apply a load-time recipe (see manifest.RECIPES) to a float32 model on `device`."""
    if recipe is None:
        return model
    if recipe == "dynamic_int8" and device.type == "cpu":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
            return quantize_dynamic(
                model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
    if recipe in ("dynamic_int8", "fp16"):
        return model.half()  # CUDA has no int8 dynamic kernels: fp16 weights instead
    if recipe == "bf16":
        return model.to(torch.bfloat16)
    raise ManifestError(f"unknown recipe {recipe!r}")


def build_model(spec: VariantSpec, device: torch.device) -> nn.Module:
    if spec.program is not None:
        program = torch.export.load(str(spec.program))
        return program.module().to(device)
    if spec.module is None or spec.weights is None:
        raise ManifestError(f"variant {spec.name}: needs 'program' or 'module' + 'weights'")
    model = import_factory(spec.module)(**spec.config)
    state = load_file(str(spec.weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ManifestError(f"variant {spec.name}: weights do not fit the module: {exc}") from None
    model = model.eval().to(device)
    return apply_recipe(model, spec.recipe, device).eval()


class LoadedVariant:
    """A variant ready to serve: model on its device, tokenizer, labels. With `cuda_graphs`
    on a CUDA device the forward replays CUDA graphs per shape bucket (`cuda_graphs`)."""

    def __init__(
        self, manifest: Manifest, name: str, device: torch.device, *, cuda_graphs: bool = False
    ) -> None:
        if name not in manifest.variants:
            raise ManifestError(f"unknown variant {name!r}; known: {sorted(manifest.variants)}")
        self.name = name
        self.spec = manifest.variants[name]
        self.device = device
        self.labels = manifest.labels
        self.tokenizer = make_tokenizer(manifest, device)
        started = time.perf_counter()
        self.model = build_model(self.spec, device)
        self.graphs = (
            GraphedForward(self.model, device, MAX_BATCH_SIZE, manifest.max_length)
            if cuda_graphs and device.type == "cuda"
            else None
        )
        self.load_seconds = time.perf_counter() - started

    @property
    def accuracy(self) -> float | None:
        return self.spec.accuracy

    def encode_host(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of `texts`, on the host."""
        enc = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
        return ids, mask

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.encode_host(texts)
        return ids.to(self.device), mask.to(self.device)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(input_ids, attention_mask).float().cpu()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if self.graphs is not None:
            with torch.inference_mode():
                logits = self.graphs(*self.encode_host(texts))
        else:
            logits = self.logits(*self.encode(texts))
        probs = torch.softmax(logits, dim=-1)
        if probs.shape != (len(texts), len(self.labels)):
            raise RuntimeError(
                f"variant {self.name} returned shape {tuple(probs.shape)}, "
                f"expected ({len(texts)}, {len(self.labels)})"
            )
        best = probs.argmax(dim=-1).tolist()
        rows = probs.tolist()
        return [
            Prediction(self.labels[b], row[b], dict(zip(self.labels, row, strict=True)))
            for b, row in zip(best, rows, strict=True)
        ]

    def warm(self, batch_sizes: Sequence[int] = (1, 8), rounds: int = 2) -> float:
        """Run the shapes it will see a few times (allocator, kernels, CUDA context)."""
        started = time.perf_counter()
        sizes = list(batch_sizes)
        if self.graphs is not None:  # capture every batch bucket up to the largest size warmed
            sizes = [b for b in self.graphs.batch_buckets if b < max(sizes)] + sizes
        for _ in range(rounds):
            for b in sizes:
                self.predict([WARM_TEXT] * b)
                self.predict(["good"] * b)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started
