"""`free_port`: ports a child can still bind when it starts."""

from __future__ import annotations

import socket

import pytest

from slo_local import promserver
from slo_local.promserver import free_port


def test_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    low = promserver._ephemeral_low()
    if low - promserver._LOWEST_PORT < 1_000:
        pytest.skip(f"this machine's ephemeral range starts at {low}: no room below it")
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(promserver._LOWEST_PORT <= p < low for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_a_listener_holds_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(promserver, "_ephemeral_low", lambda: taken + 1)
        monkeypatch.setattr(promserver, "_LOWEST_PORT", taken - 1_000)
        assert taken not in {free_port() for _ in range(400)}


def test_without_room_below_the_range_the_os_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promserver, "_ephemeral_low", lambda: promserver._LOWEST_PORT + 10)
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(p > 0 for p in ports)
