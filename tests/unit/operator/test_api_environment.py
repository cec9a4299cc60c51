"""The operator's API client reads proxies and ~/.netrc from the environment only when the
environment has any: aiohttp otherwise looks them up again on every request, in a thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo_operator.run import environment_is_trusted

PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NETRC")


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in PROXY_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def test_a_bare_environment_is_not_read(bare: pytest.MonkeyPatch) -> None:
    assert environment_is_trusted() is False
    bare.setenv("HTTPS_PROXY", "")  # set but empty: nothing to read
    assert environment_is_trusted() is False


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "NETRC"])
def test_a_proxy_or_netrc_variable_is_read(bare: pytest.MonkeyPatch, name: str) -> None:
    bare.setenv(name, "http://proxy.example:3128")
    assert environment_is_trusted() is True


def test_a_netrc_file_is_read(bare: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine example login a password b\n")
    assert environment_is_trusted() is True
