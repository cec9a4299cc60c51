"""Reading an HTTP answer with a size cap: the declared length first, then chunk by chunk."""

from __future__ import annotations

import httpx


class TooLarge(Exception):
    """The answer is over the cap; `size` is the declared length or the bytes read so far."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed `response`, abandoned (TooLarge) past `max_bytes`."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)
