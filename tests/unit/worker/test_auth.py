"""The admin token: constant-time check that never raises, re-read when its file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference_worker.auth import AdminToken


def test_fixed_token() -> None:
    t = AdminToken("s3cret")
    assert t.check("Bearer s3cret")
    assert t.check("bearer  s3cret ")
    for header in ("", "Bearer", "Bearer wrong", "Basic s3cret", "s3cret"):
        assert not t.check(header)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer \udcff\udcfe",  # how aiohttp hands over non-UTF-8 bytes (surrogate escapes)
        "Bearer \ud800",  # a lone surrogate that is no escape: UnicodeEncodeError before
        "Bearer s3cret\udcff",
        "Bearer " + "x" * 100_000,
    ],
)
def test_any_header_is_refused_without_raising(header: str) -> None:
    assert AdminToken("s3cret").check(header) is False


def test_no_token_refuses_everything() -> None:
    assert not AdminToken(None).check("Bearer ")
    assert not AdminToken("").check("Bearer ")


def swap(link: Path, token: str) -> None:
    """Rotate the way a Secret volume does: a new file, then an atomic symlink swap."""
    target = link.parent / f"..data-{os.urandom(4).hex()}"
    target.write_text(token + "\n")
    tmp = link.parent / "token.tmp"
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_rotated_file_is_read_again(tmp_path: Path) -> None:
    link = tmp_path / "token"
    swap(link, "first")
    t = AdminToken("first", link)
    assert t.check("Bearer first")
    swap(link, "second")
    assert t.check("Bearer second")
    assert not t.check("Bearer first")
    link.write_text("third")  # rewritten in place
    assert t.check("Bearer third")


def test_missing_or_empty_file_keeps_the_last_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("kept")
    t = AdminToken("kept", path)
    path.write_text("   \n")
    assert t.check("Bearer kept")
    assert not t.check("Bearer ")
    path.unlink()
    assert t.check("Bearer kept")
    path.write_bytes(b"\xff\xfe")
    assert t.check("Bearer kept")
    path.write_text("back")
    assert t.check("Bearer back")
