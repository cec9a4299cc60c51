"""Loading variants from a manifest and running batches on them (tiny fixture family, and the
real MiniLM weights for the encoder mapping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from inference_worker.demo_model import load_lexicon, source_paths, split
from inference_worker.encoder import TextClassifier, minilm_state_dict
from inference_worker.manifest import Manifest, ManifestError
from inference_worker.texts import sample_texts
from inference_worker.variants import LoadedVariant, apply_recipe, resolve_device
from tests.support.worker import build_fixture_family

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_family(tmp_path_factory.mktemp("fixture"))


def test_each_variant_predicts_one_output_per_text(fixture_dir: Path) -> None:
    manifest = Manifest.load(fixture_dir)
    texts = ["good", "a terrible, slow and rude service", "", "ok " * 500]  # empty, truncated
    for name in ("full", "quantized", "distilled"):
        v = LoadedVariant(manifest, name, CPU)
        preds = v.predict(texts)
        assert len(preds) == len(texts)
        for p in preds:
            assert p.label in ("negative", "positive")
            assert p.score == max(p.scores.values())
            assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert v.accuracy is not None


def test_quantized_recipe_makes_int8_linears(fixture_dir: Path) -> None:
    v = LoadedVariant(Manifest.load(fixture_dir), "quantized", CPU)
    kinds = {type(m) for m in v.model.modules()}
    assert torch.ao.nn.quantized.dynamic.Linear in kinds
    assert torch.nn.Linear not in kinds


def test_batching_does_not_change_outputs(fixture_dir: Path) -> None:
    v = LoadedVariant(Manifest.load(fixture_dir), "full", CPU)
    texts = ["good", "the food was really bad and the staff rude", "fine"]
    together = v.predict(texts)
    alone = [v.predict([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a.label == b.label
        assert a.score == pytest.approx(b.score, abs=1e-5)  # padding is masked out


def test_recipes() -> None:
    model = TextClassifier(hidden=16, layers=1, heads=2, intermediate=32, max_positions=16)
    assert next(apply_recipe(model, "bf16", CPU).parameters()).dtype == torch.bfloat16
    assert apply_recipe(model, None, CPU) is model


def test_unknown_variant_and_broken_weights(fixture_dir: Path, tmp_path: Path) -> None:
    manifest = Manifest.load(fixture_dir)
    with pytest.raises(ManifestError, match="unknown variant 'tiny'"):
        LoadedVariant(manifest, "tiny", CPU)
    text = (fixture_dir / "variants.json").read_text().replace('"layers": 1', '"layers": 3')
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in fixture_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "variants.json").write_text(text)
    with pytest.raises(ManifestError, match="weights do not fit the module"):
        LoadedVariant(Manifest.load(broken), "distilled", CPU)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="only cpu and cuda"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_minilm_weights_map_onto_the_encoder() -> None:
    """The real all-MiniLM-L6-v2 weights: related sentences embed close, unrelated ones not."""
    minilm, _ = source_paths()
    model = TextClassifier()
    missing = model.load_state_dict(
        minilm_state_dict(load_file(str(minilm / "model.safetensors"))), strict=False
    ).missing_keys
    assert set(missing) == {"head.weight", "head.bias"}
    tok = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    texts = ["I love this movie", "This film is wonderful", "the weather is cold today"]
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.inference_mode():
        e = model.eval().embed(ids, mask)
    sim = e @ e.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_sample_texts_are_exactly_the_requested_tokens() -> None:
    minilm, _ = source_paths()
    tok = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tok.no_padding()
    for n in (3, 16, 64):
        for text in sample_texts(8, tokens=n, seed=n):
            assert len(tok.encode(text).ids) == n
    assert sample_texts(4, seed=1) == sample_texts(4, seed=1)


def test_lexicon_split_is_deterministic_and_disjoint() -> None:
    _, lexicon = source_paths()
    data = load_lexicon(lexicon)
    assert len(data) > 6000
    assert {y for _, y in data} == {0, 1}
    train, test = split(data)
    assert split(data) == (train, test)
    assert len(test) == int(len(data) * 0.2)
    assert not {t for t, _ in train} & {t for t, _ in test}


@pytest.mark.slow
def test_an_exported_program_variant(tmp_path: Path) -> None:
    model_dir = build_fixture_family(tmp_path / "m", with_program=True)
    manifest = Manifest.load(model_dir)
    exported = LoadedVariant(manifest, "exported", CPU)
    full = LoadedVariant(manifest, "full", CPU)
    texts = ["good", "bad service and a long wait"]
    for a, b in zip(exported.predict(texts), full.predict(texts), strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


@pytest.mark.parametrize("recipe", ["fp16", "bf16"])
def test_half_precision_recipes_agree_with_fp32(
    fixture_dir: Path, tmp_path: Path, recipe: str
) -> None:
    """The reduced-precision path CUDA uses for `quantized` (fp16 weights), run on the CPU."""
    doc = json.loads((fixture_dir / "variants.json").read_text())
    doc["variants"]["half"] = {**doc["variants"]["full"], "recipe": recipe}
    for f in fixture_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "variants.json").write_text(json.dumps(doc))
    manifest = Manifest.load(tmp_path)
    half = LoadedVariant(manifest, "half", CPU)
    full = LoadedVariant(manifest, "full", CPU)
    assert next(half.model.parameters()).dtype != torch.float32
    texts = ["good", "", "the food was really bad and the staff rude", "ok " * 40]
    for a, b in zip(half.predict(texts), full.predict(texts), strict=True):
        assert a.scores == pytest.approx(b.scores, abs=0.02)
