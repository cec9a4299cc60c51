"""Length-prefixed JSON frames between the HTTP frontends and the model process.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (an
object). Both ends use `FrameProtocol`, an asyncio protocol over a Unix stream socket: no
per-request connection, no HTTP parsing, one `json.loads` and one `json.dumps` per message.

Messages, frontend to model:

- `{"op": "predict", "id": N, "texts": [...]}`: answered by `{"id": N, "status": 200,
  "body": {...}}` or `{"id": N, "status": 4xx/5xx, "error": ..., "field"?, "retry_after"?,
  "close"?}` (the fields of `api.HttpError`);
- `{"op": "metrics", "id": N}`: answered by `{"id": N, "text": "<exposition>"}`;
- `{"op": "observe", "variant": V, "code": C, "seconds": S}`: one answered HTTP request, for
  the model process's metrics (no answer).

Model to frontend: `{"op": "state", "ready", "terminating", "accepting", "variant"}` when
any of them changes (and on connect), and `{"op": "stop"}` at the end of a drain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20
"""Largest frame accepted (a predict answer for 64 texts is a few KiB; a metrics page less
than a MiB): a peer sending more is broken and its connection is closed."""


def encode(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


class FrameProtocol(asyncio.Protocol):
    """Splits the byte stream into frames and hands each decoded message to `on_message`;
    `on_made` runs when the connection is made, `on_lost` once when it closes."""

    def __init__(
        self,
        on_message: Callable[[FrameProtocol, dict[str, Any]], None],
        on_lost: Callable[[FrameProtocol], None] | None = None,
        on_made: Callable[[FrameProtocol], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_made = on_made
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            if size > MAX_FRAME:
                log.error("frame of %d bytes is over the limit; closing the connection", size)
                self.close()
                return
            end = start + HEADER.size + size
            if len(buffer) < end:
                break
            message = json.loads(buffer[start + HEADER.size : end])  # one copy: the slice
            start = end
            self._on_message(self, message)
        if start:
            del buffer[:start]

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._on_lost is not None:
            self._on_lost(self)
