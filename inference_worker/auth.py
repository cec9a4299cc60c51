"""The admin API's bearer token: a fixed value, or a file re-read when it changes.

A Kubernetes Secret mounted as a volume is updated in place (the kubelet swaps a symlink), so
a worker that reads its token once keeps answering 401 to the rotated token until it restarts.
`AdminToken` checks the file's identity (device, inode, size, mtime) on each admin request -
one `stat`, microseconds - and re-reads it when it changed. A file that is missing, unreadable
or empty after a change keeps the last good token (and logs why), so a half-done rotation never
locks the operator out nor opens the port.

`check(header)` compares in constant time and never raises, whatever bytes the client sent
(aiohttp hands a non-UTF-8 header over as surrogate escapes).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class AdminToken:
    def __init__(self, value: str | None = None, path: Path | None = None) -> None:
        self._path = path
        self._value = (value or "").strip()
        self._stamp: tuple[int, int, int, int] | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._stamp = self._stat()
            self._reread()

    def _stat(self) -> tuple[int, int, int, int] | None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _reread(self) -> None:
        assert self._path is not None
        try:
            token = self._path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            log.error("admin token file %s unreadable, keeping the last token: %s", self._path, exc)
            return
        if not token:
            log.error("admin token file %s is empty, keeping the last token", self._path)
            return
        if self._value and token != self._value:
            log.info("admin token file %s changed: new token in force", self._path)
        self._value = token

    @property
    def value(self) -> str:
        """The token in force (re-read first if the file changed)."""
        if self._path is not None:
            with self._lock:
                stamp = self._stat()
                if stamp is not None and stamp != self._stamp:
                    self._stamp = stamp
                    self._reread()
        return self._value

    def check(self, authorization: str) -> bool:
        """True if `authorization` is `Bearer <the token in force>`."""
        scheme, _, given = authorization.partition(" ")
        expected = self.value
        if scheme.lower() != "bearer" or not expected:
            return False
        try:
            given_bytes = given.strip().encode("utf-8", "surrogateescape")
        except UnicodeError:
            return False
        return hmac.compare_digest(given_bytes, expected.encode("utf-8"))
