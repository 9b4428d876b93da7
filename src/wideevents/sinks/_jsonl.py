from __future__ import annotations

import os
import stat
import sys

from ._base import Batch, Sink


def _never_blocks(path: str) -> bool:
    try:
        st = os.fstat(sys.stdout.fileno()) if path == "-" else os.stat(path)
    except FileNotFoundError:
        return path != "-"  # a file this sink will create
    except (OSError, ValueError, AttributeError):  # stdout closed or replaced
        return False
    return stat.S_ISREG(st.st_mode) or path == os.devnull


class JsonLinesSink(Sink):
    """One JSON object per line, to standard output (``"-"``) or appended to a file.

    Each batch is one ``write`` of all its lines straight to the descriptor (no buffer that a
    fork could copy and write twice). A file is created owner-only (0600).
    """

    def __init__(self, path: str | os.PathLike[str] = "-") -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        # A pipe, a socket or a terminal can block a write for as long as its reader likes:
        # only files (and /dev/null) may be written from an app thread.
        # (A subclass says for itself, in its class body.)
        if type(self) is JsonLinesSink:
            self.inline_safe = _never_blocks(self.path)

    def _open(self) -> int:
        if self.path == "-":
            sys.stdout.flush()
            return sys.stdout.fileno()
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def export(self, batch: Batch) -> None:
        fd = self._fd
        if fd is None:
            fd = self._fd = self._open()
        data = memoryview(b"".join(batch.lines))
        while data:
            data = data[os.write(fd, data) :]

    def shutdown(self, timeout: float | None = None) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self.path != "-":
            os.close(fd)
