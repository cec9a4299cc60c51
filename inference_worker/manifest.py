"""The variant manifest: `variants.json` in a model directory.

```json
{
  "format": 1,
  "tokenizer": "tokenizer.json",
  "max_length": 128,
  "labels": ["negative", "positive"],
  "default": "full",
  "variants": {
    "full":      {"module": "inference_worker.encoder:TextClassifier", "config": {...},
                  "weights": "full.safetensors", "accuracy": 0.93},
    "quantized": {"module": "...", "config": {...}, "weights": "full.safetensors",
                  "recipe": "dynamic_int8"},
    "exported":  {"program": "model.pt2"}
  }
}
```

A variant is either a `torch.export` program (`program`, a `.pt2` file) or an importable
module factory (`module`, `"package.module:Callable"`, called with `config` as keyword
arguments) plus a safetensors state dict (`weights`), with an optional load-time `recipe`
(module variants only). Every variant is called as `model(input_ids, attention_mask)` and
returns logits of shape `[batch, len(labels)]`. Paths are relative to the model directory.
See docs/worker.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "variants.json"
RECIPES = ("dynamic_int8", "bf16", "fp16")
"""Load-time recipes: `dynamic_int8` is int8 dynamic per-channel quantization of every
Linear on CPU (on CUDA, where torch has no int8 dynamic kernels, fp16 weights instead);
`bf16` and `fp16` cast the weights."""


class ManifestError(ValueError):
    """The manifest is missing or invalid; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class VariantSpec:
    name: str
    program: Path | None = None
    module: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    recipe: str | None = None
    accuracy: float | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    root: Path
    tokenizer: Path
    labels: tuple[str, ...]
    max_length: int
    default: str
    variants: Mapping[str, VariantSpec]

    @classmethod
    def load(cls, model_dir: str | Path) -> Manifest:
        root = Path(model_dir).expanduser().resolve()
        path = root / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(f"{path}: no variant manifest (see docs/worker.md)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read: {exc}") from None
        try:
            return cls.parse(data, root)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from None

    @classmethod
    def parse(cls, data: Any, root: Path) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError("must be a JSON object")
        _known(data, {"format", "tokenizer", "max_length", "labels", "default", "variants"}, "")
        if data.get("format", 1) != 1:
            raise ManifestError("format: only format 1 is supported")
        tokenizer = _file(root, data.get("tokenizer"), "tokenizer")
        labels = data.get("labels")
        if (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)
        ):
            raise ManifestError("labels: must be a list of at least 2 unique non-empty strings")
        max_length = data.get("max_length", 128)
        if not _is_int(max_length) or not 2 <= max_length <= 8192:
            raise ManifestError("max_length: must be an integer in 2..8192")
        raw = data.get("variants")
        if not isinstance(raw, dict) or not raw:
            raise ManifestError("variants: must be a non-empty object")
        variants = {name: _variant(root, name, spec) for name, spec in raw.items()}
        default = data.get("default", next(iter(variants)))
        if default not in variants:
            raise ManifestError(f"default: {default!r} is not one of {sorted(variants)}")
        return cls(root, tokenizer, tuple(labels), int(max_length), default, variants)


def _variant(root: Path, name: str, spec: Any) -> VariantSpec:
    where = f"variants.{name}"
    if not name or not isinstance(spec, dict):
        raise ManifestError(f"{where}: must be an object with a non-empty name")
    _known(spec, {"program", "module", "config", "weights", "recipe", "accuracy"}, where)
    accuracy = spec.get("accuracy")
    if accuracy is not None and (
        not isinstance(accuracy, int | float)
        or isinstance(accuracy, bool)
        or not math.isfinite(accuracy)
        or not 0 <= accuracy <= 1
    ):
        raise ManifestError(f"{where}.accuracy: must be a number in [0, 1]")
    if "program" in spec:
        extra = {"module", "config", "weights", "recipe"} & spec.keys()
        if extra:
            raise ManifestError(
                f"{where}: a 'program' variant takes no {sorted(extra)} (recipes apply to "
                "module variants; export the program in the precision you serve)"
            )
        program = _file(root, spec["program"], f"{where}.program")
        if program.suffix != ".pt2":
            raise ManifestError(f"{where}.program: must be a torch.export .pt2 file")
        return VariantSpec(name, program=program, accuracy=accuracy)
    module = spec.get("module")
    if not isinstance(module, str) or module.count(":") != 1 or not all(module.split(":")):
        raise ManifestError(
            f"{where}: needs 'program' (.pt2) or 'module' as 'package.module:Callable'"
        )
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ManifestError(f"{where}.config: must be an object of keyword arguments")
    weights = _file(root, spec.get("weights"), f"{where}.weights")
    if weights.suffix != ".safetensors":
        raise ManifestError(f"{where}.weights: must be a .safetensors file")
    recipe = spec.get("recipe")
    if recipe is not None and recipe not in RECIPES:
        raise ManifestError(f"{where}.recipe: must be one of {list(RECIPES)}")
    return VariantSpec(name, None, module, config, weights, recipe, accuracy)


def _file(root: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: must be a path relative to the model directory")
    path = (root / value).resolve()
    if not path.is_file():
        raise ManifestError(f"{where}: {path} does not exist")
    return path


def _known(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ManifestError(f"{prefix}unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
