"""The frames between the HTTP frontends and the model process."""

from __future__ import annotations

import asyncio
from typing import Any

from inference_worker.ipc import HEADER, MAX_FRAME, FrameProtocol, encode


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _protocol() -> tuple[FrameProtocol, list[dict[str, Any]], FakeTransport]:
    received: list[dict[str, Any]] = []
    protocol = FrameProtocol(lambda link, message: received.append(message))
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, received, transport


def test_frames_split_and_joined_arbitrarily_decode_in_order() -> None:
    messages = [{"op": "predict", "id": i, "texts": ["é" * i, "x"]} for i in range(50)]
    stream = b"".join(encode(m) for m in messages)
    protocol, received, _ = _protocol()
    for cut in range(0, len(stream), 7):  # pieces that split headers and payloads
        protocol.data_received(stream[cut : cut + 7])
    assert received == messages
    protocol.data_received(stream)  # all of them in one piece
    assert received == messages * 2


def test_send_writes_a_frame_the_other_end_decodes() -> None:
    sender, _, transport = _protocol()
    sender.send({"op": "state", "ready": True})
    receiver, received, _ = _protocol()
    receiver.data_received(bytes(transport.written))
    assert received == [{"op": "state", "ready": True}]
    (size,) = HEADER.unpack_from(transport.written)
    assert size == len(transport.written) - HEADER.size


def test_an_oversized_frame_closes_the_connection_without_reading_it() -> None:
    protocol, received, transport = _protocol()
    protocol.data_received(HEADER.pack(MAX_FRAME + 1) + b"{}")
    assert transport.closed
    assert received == []


def test_callbacks_on_connect_and_loss() -> None:
    events: list[str] = []
    protocol = FrameProtocol(
        lambda link, message: None,
        on_lost=lambda link: events.append("lost"),
        on_made=lambda link: events.append("made"),
    )
    protocol.connection_made(FakeTransport())
    assert protocol.open
    protocol.connection_lost(None)
    assert events == ["made", "lost"]
    assert not protocol.open
    protocol.send({"op": "stop"})  # after the loss: nothing to write to, no error
