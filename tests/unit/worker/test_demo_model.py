"""The demo family's built model: a real quality order on held-out lexicon entries.

The slow test builds the family with the shipped recipe (or reuses the cached build of the
same inputs) and measures it through the worker's own loading and serving path, against the
ratings it reads from the VADER lexicon itself: the build's `accuracy.json` is not what is
checked.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from inference_worker.demo_model import (
    build_demo_model,
    default_model_dir,
    held_out,
    load_lexicon,
    round_weights,
    source_paths,
    split,
)
from inference_worker.manifest import Manifest
from inference_worker.variants import LoadedVariant

ORDER = ("full", "quantized", "distilled")
MIN_GAP, MAX_ACCURACY_GAP, MAX_AGREEMENT_GAP = 0.01, 0.04, 0.06
"""The goal: each step down the family costs at least 1 point, at most 4 points of accuracy
and at most 6 points of agreement with `full` (disagreements fall on hard entries, where `full`
itself is often wrong, so agreement drops faster than accuracy)."""
MAX_BATCH_SPREAD = 0.02
"""A variant quantized at load serves within 2 points of accuracy whatever its batch size."""


def lexicon_ratings() -> dict[str, float]:
    """First mean rating of every entry, read straight from the lexicon file."""
    ratings: dict[str, float] = {}
    for line in source_paths()[1].read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip():
            ratings.setdefault(parts[0].strip(), float(parts[1]))
    return ratings


def test_held_out_entries_are_disjoint_from_training() -> None:
    train, test = split(load_lexicon(source_paths()[1]))
    assert not {w for w, _ in train} & {w for w, _ in test}
    assert held_out() == test
    assert len(test) > 1000


def test_round_weights_keeps_few_levels_per_channel() -> None:
    gen = torch.Generator().manual_seed(0)
    state = {
        "blocks.0.ff_in.weight": torch.randn(8, 32, generator=gen),
        "blocks.0.ff_in.bias": torch.randn(8, generator=gen),
        "head.0.weight": torch.randn(4, 8, generator=gen),
    }
    out = round_weights(state, 4)
    w = out["blocks.0.ff_in.weight"]
    for row, orig in zip(w, state["blocks.0.ff_in.weight"], strict=True):
        assert len(torch.unique(row)) <= 15
        assert (row - orig).abs().max() <= orig.abs().max() / 7 / 2 + 1e-6
    assert torch.equal(out["blocks.0.ff_in.bias"], state["blocks.0.ff_in.bias"])
    assert torch.equal(out["head.0.weight"], state["head.0.weight"])


SERVED_BATCHES = (1, 8, 32)
"""Batch sizes the worker forms, from light load to full batches (`--max-batch-size` 32)."""


def _served(variant: LoadedVariant, texts: list[str], batch: int) -> torch.Tensor:
    """Predicted label indices, `batch` texts at a time in arrival order (FIFO, as served)."""
    out: list[int] = []
    for i in range(0, len(texts), batch):
        out += [variant.labels.index(p.label) for p in variant.predict(texts[i : i + batch])]
    return torch.tensor(out)


def measure_family() -> tuple[dict[str, float], dict[str, float], Manifest, dict[str, float]]:
    """Accuracy and agreement with `full` of each built variant on the held-out entries,
    through the worker's loader and `predict`, in full batches; and, for a variant quantized
    at load (`recipe`), the spread of its accuracy over the batch sizes the worker forms:
    dynamic int8 quantizes a batch's activations with one scale, so a text's label can
    depend on the texts it shares a batch with."""
    torch.set_num_threads(2)
    model_dir = default_model_dir()
    build_demo_model(model_dir)  # returns at once when the cached build has the same inputs
    manifest = Manifest.load(model_dir)
    texts = [t for t, _ in held_out()]
    ratings = lexicon_ratings()
    labels = torch.tensor([int(ratings[t] > 0) for t in texts])
    preds: dict[str, torch.Tensor] = {}
    spread: dict[str, float] = {}
    for name in ORDER:
        variant = LoadedVariant(manifest, name, torch.device("cpu"))
        preds[name] = _served(variant, texts, SERVED_BATCHES[-1])
        if manifest.variants[name].recipe is not None:
            others = [_served(variant, texts, b) for b in SERVED_BATCHES[:-1]]
            served = [float((p == labels).float().mean()) for p in (preds[name], *others)]
            spread[name] = max(served) - min(served)
    accuracy = {n: float((p == labels).float().mean()) for n, p in preds.items()}
    agreement = {n: float((p == preds["full"]).float().mean()) for n, p in preds.items()}
    return accuracy, agreement, manifest, spread


@pytest.fixture(scope="module")
def family() -> tuple[dict[str, float], dict[str, float], Manifest, dict[str, float]]:
    return measure_family()


@pytest.mark.slow
def test_the_built_family_is_ordered_in_quality(
    family: tuple[dict[str, float], dict[str, float], Manifest, dict[str, float]],
) -> None:
    accuracy, agreement, manifest, spread = family
    summary = f"accuracy {accuracy}, agreement with full {agreement}"
    for better, worse in itertools.pairwise(ORDER):
        assert MIN_GAP <= agreement[better] - agreement[worse] <= MAX_AGREEMENT_GAP, summary
    for worse in ORDER[1:]:
        assert MIN_GAP <= accuracy["full"] - accuracy[worse] <= MAX_ACCURACY_GAP, summary
    # the manifest (and so the metric and the profiles) states what the served model does,
    # within a point plus how much the batch moves it (0 for float variants)
    for name in ORDER:
        allowed = 0.01 + spread.get(name, 0.0)
        assert manifest.variants[name].accuracy == pytest.approx(accuracy[name], abs=allowed)
    assert all(s <= MAX_BATCH_SPREAD for s in spread.values()), spread


@pytest.mark.slow
def test_distilled_costs_at_least_a_point_of_accuracy_below_quantized(
    family: tuple[dict[str, float], dict[str, float], Manifest, dict[str, float]],
) -> None:
    accuracy, _, _, _ = family
    assert MIN_GAP <= accuracy["quantized"] - accuracy["distilled"] <= MAX_ACCURACY_GAP
