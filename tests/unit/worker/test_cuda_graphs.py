"""CUDA-graph buckets: the shapes, and that padding a batch up to its bucket leaves the real
rows' logits unchanged (what replaying a graph of the padded shape relies on). The capture
and replay themselves need a GPU: `bench/gpu_worker_check.py` runs them there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference_worker.cuda_graphs import GraphedForward, buckets, pad_into
from inference_worker.manifest import Manifest
from inference_worker.texts import sample_texts
from inference_worker.variants import LoadedVariant
from tests.support.worker import build_fixture_family

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_family(tmp_path_factory.mktemp("fixture"))


def test_buckets_double_up_to_the_limit() -> None:
    assert buckets(32, 1) == (1, 2, 4, 8, 16, 32)
    assert buckets(128, 16) == (16, 32, 64, 128)
    assert buckets(100, 16) == (16, 32, 64, 100)
    assert buckets(1, 1) == (1,)


def test_a_batch_takes_the_smallest_bucket_that_holds_it() -> None:
    graphed = GraphedForward(lambda i, m: i, CPU, max_batch=32, max_length=128)
    assert graphed.bucket(1, 3) == (1, 16)
    assert graphed.bucket(3, 17) == (4, 32)
    assert graphed.bucket(32, 128) == (32, 128)
    assert graphed.bucket(33, 16) is None  # larger than every bucket: runs eagerly
    assert graphed.bucket(4, 129) is None


def test_padding_to_the_bucket_leaves_the_real_rows_unchanged(fixture_dir: Path) -> None:
    manifest = Manifest.load(fixture_dir)
    for name in ("full", "distilled"):
        variant = LoadedVariant(manifest, name, CPU)
        for n, tokens in ((1, 4), (3, 16), (5, 40)):
            ids, mask = variant.encode(sample_texts(n, tokens=tokens, seed=n))
            graphed = GraphedForward(variant.model, CPU, max_batch=32, max_length=128)
            bucket = graphed.bucket(*ids.shape)
            assert bucket is not None
            staged = torch.full((2, *bucket), 7, dtype=torch.long)  # stale contents
            pad_into(staged, ids, mask)
            padded_ids, padded_mask = staged[0], staged[1]
            with torch.inference_mode():
                plain = variant.model(ids, mask)
                padded = variant.model(padded_ids, padded_mask)
            assert torch.isfinite(padded).all()  # the added rows divide by nothing
            torch.testing.assert_close(padded[:n], plain, rtol=1e-4, atol=1e-5)


def test_graphs_are_for_cuda_only(fixture_dir: Path) -> None:
    variant = LoadedVariant(Manifest.load(fixture_dir), "full", CPU, cuda_graphs=True)
    assert variant.graphs is None  # on the CPU the flag changes nothing
    assert len(variant.predict(["good", "bad"])) == 2


def test_a_bucket_that_fails_to_capture_runs_eagerly_from_then_on(fixture_dir: Path) -> None:
    variant = LoadedVariant(Manifest.load(fixture_dir), "full", CPU)
    graphed = GraphedForward(variant.model, CPU, max_batch=32, max_length=128)
    attempts = []

    def fail(key: tuple[int, int]) -> None:
        attempts.append(key)
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed._capture = fail  # type: ignore[method-assign]
    ids, mask = variant.encode_host(sample_texts(3, tokens=8, seed=1))
    with torch.inference_mode():
        expected = variant.model(ids, mask).float()
        first = graphed(ids, mask)
        second = graphed(ids, mask)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)
    assert attempts == [graphed.bucket(*ids.shape)]  # tried once, then eager without retrying
    assert graphed.eager_buckets == {graphed.bucket(*ids.shape)}
