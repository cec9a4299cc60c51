"""Live variant switches under concurrent load: no request fails, and every request sent
after a PUT returned is served by the new variant."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.worker import run_worker

SEQUENCE = ["quantized", "distilled", "full", "distilled", "quantized", "full"]


@pytest.mark.slow
@pytest.mark.parametrize("preload", ["all", "active"])
def test_switch_under_load_loses_nothing(fixture_model: Path, tmp_path: Path, preload: str) -> None:
    args = ["--preload", preload, "--batch-window-ms", "2", "--max-batch-size", "8"]
    with run_worker(fixture_model, args, workdir=tmp_path) as w:
        results: list[tuple[float, float, int, str]] = []  # sent, received, status, variant
        switches: list[tuple[float, float, str]] = []  # PUT sent, PUT returned, variant
        stop = asyncio.Event()

        async def load(client: httpx.AsyncClient, i: int) -> None:
            while not stop.is_set():
                sent = time.monotonic()
                r = await client.post(w.url + "/v1/predict", json={"inputs": [f"text {i}"]})
                variant = r.json().get("variant", "") if r.status_code == 200 else r.text
                results.append((sent, time.monotonic(), r.status_code, variant))

        async def switch(client: httpx.AsyncClient) -> None:
            for variant in SEQUENCE:
                await asyncio.sleep(0.3)
                sent = time.monotonic()
                r = await client.put(
                    w.admin_url + "/admin/config",
                    json={"variant": variant},
                    headers=w.admin_headers,
                )
                assert r.status_code == 200, r.text
                switches.append((sent, time.monotonic(), variant))
            await asyncio.sleep(0.3)
            stop.set()

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                await asyncio.gather(switch(client), *(load(client, i) for i in range(8)))

        asyncio.run(scenario())

    codes = Counter(status for _, _, status, _ in results)
    assert set(codes) == {200}, codes
    assert len(results) > 50
    assert {v for *_, v in results} == {"full", "quantized", "distilled"}
    # a request sent after a PUT returned, and answered before the next PUT was sent, was
    # served by the variant that PUT installed
    bounds = [*[s for s, _, _ in switches[1:]], float("inf")]
    for (_, returned, variant), next_sent in zip(switches, bounds, strict=True):
        served = [v for sent, got, _, v in results if returned < sent and got < next_sent]
        assert served, variant
        assert set(served) == {variant}, (variant, Counter(served))
