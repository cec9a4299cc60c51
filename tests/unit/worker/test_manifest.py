"""The variant manifest: what is accepted and the errors for what is not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inference_worker.manifest import Manifest, ManifestError

MODULE = "inference_worker.encoder:TextClassifier"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    for name in ("tokenizer.json", "w.safetensors", "m.pt2"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def write(model_dir: Path, **overrides: Any) -> Path:
    doc: dict[str, Any] = {
        "tokenizer": "tokenizer.json",
        "labels": ["negative", "positive"],
        "variants": {
            "full": {"module": MODULE, "config": {"layers": 6}, "weights": "w.safetensors"},
            "quantized": {"module": MODULE, "weights": "w.safetensors", "recipe": "dynamic_int8"},
            "exported": {"program": "m.pt2", "accuracy": 0.9},
        },
    }
    doc.update(overrides)
    (model_dir / "variants.json").write_text(json.dumps(doc))
    return model_dir


def test_a_valid_manifest(model_dir: Path) -> None:
    m = Manifest.load(write(model_dir))
    assert m.default == "full"  # the first variant when not given
    assert m.labels == ("negative", "positive")
    assert m.max_length == 128
    assert m.variants["full"].config == {"layers": 6}
    assert m.variants["quantized"].recipe == "dynamic_int8"
    assert m.variants["exported"].program == model_dir / "m.pt2"
    assert m.variants["exported"].accuracy == 0.9


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"default": "tiny"}, "default: 'tiny' is not one of"),
        ({"labels": ["only"]}, "labels: must be a list of at least 2"),
        ({"labels": ["a", "a"]}, "labels"),
        ({"max_length": 1}, "max_length"),
        ({"format": 2}, "format"),
        ({"tokenizer": "missing.json"}, "tokenizer: "),
        ({"extra": 1}, "unknown field(s) ['extra']"),
        ({"variants": {}}, "variants: must be a non-empty object"),
        ({"variants": {"a": {"weights": "w.safetensors"}}}, "variants.a: needs 'program'"),
        ({"variants": {"a": {"module": "nocolon", "weights": "w.safetensors"}}}, "variants.a"),
        ({"variants": {"a": {"module": MODULE}}}, "variants.a.weights"),
        ({"variants": {"a": {"module": MODULE, "weights": "m.pt2"}}}, ".safetensors"),
        (
            {"variants": {"a": {"module": MODULE, "weights": "w.safetensors", "recipe": "int4"}}},
            "variants.a.recipe: must be one of",
        ),
        (
            {"variants": {"a": {"program": "m.pt2", "recipe": "bf16"}}},
            "a 'program' variant takes no ['recipe']",
        ),
        ({"variants": {"a": {"program": "w.safetensors"}}}, ".pt2"),
        (
            {"variants": {"a": {"module": MODULE, "weights": "w.safetensors", "accuracy": 1.5}}},
            "variants.a.accuracy",
        ),
        (
            {"variants": {"a": {"module": MODULE, "weights": "w.safetensors", "foo": 1}}},
            "variants.a: unknown field(s) ['foo']",
        ),
    ],
)
def test_errors_name_the_file_and_field(
    model_dir: Path, overrides: dict[str, Any], words: str
) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.load(write(model_dir, **overrides))
    assert str(model_dir / "variants.json") in str(info.value)
    assert words in str(info.value)


def test_missing_and_malformed_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no variant manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "variants.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        Manifest.load(tmp_path)
