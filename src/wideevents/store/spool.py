"""The write side of the store: one process appends JSON lines to segments of its own.

A segment is ``<host>-<pid>-<start µs>-<seq>.jsonl.open`` while its process writes it and is
sealed by a rename to ``….jsonl`` at every flush (once a second by default) or when it grows
past a size limit. Just before, a ``….types`` sidecar is written: for every field in the
segment, the Python types its values had. With it the ingester knows each column's type
without reading every line twice; a segment without one (its writer was killed) is read
with DuckDB's type detection instead.

Each export is one ``write`` of whole lines; when a write fails (disk full, file size limit)
the segment is cut back to its last whole line, the batch is counted as lost and the next
export starts a new segment, so a sealed segment only ever holds whole lines.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson

from .. import _internal
from .paths import StorePaths

SEGMENT_BYTES = 64 << 20
OPEN_SUFFIX = ".jsonl.open"
SEALED_SUFFIX = ".jsonl"
TYPES_SUFFIX = ".types"

Signature = tuple[tuple[str, ...], tuple[type, ...]]


def type_name(t: type) -> str:
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64] or "host"


class SpoolWriter:
    """Appends batches of lines to this process's current segment; not thread-safe (the
    pipeline calls it under its lock: from its worker, or from an app thread right after a
    response, which only ever appends to an open segment)."""

    def __init__(self, paths: StorePaths, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.paths = paths
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._seq = 0
        self._signatures: set[Signature] = set()
        self._untyped = False
        self.lines_lost = 0

    def _open(self) -> int:
        spool = self.paths.ensure_spool()
        self._seq += 1
        name = f"{_host()}-{os.getpid()}-{time.time_ns() // 1000}-{self._seq}{OPEN_SUFFIX}"
        path = spool / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # Held for the segment's life: the ingester claims only segments nobody holds.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._path, self._size = fd, path, 0
        return fd

    def write(
        self,
        lines: list[bytes],
        records: list[dict[str, Any]] | None = None,
        *,
        roll: bool = True,
    ) -> None:
        """Append whole lines; on failure count them as lost and leave no partial line.

        *records* are the same events as dicts, for the segment's types sidecar. ``roll``:
        seal the segment when it has outgrown its size or a write failed (an app thread
        passes False: the worker's next flush seals it instead).
        """
        if not lines:
            return
        data = b"".join(lines)
        start = self._size  # 0 when no segment is open: _open starts one at 0
        try:
            fd = self._fd if self._fd is not None else self._open()
            # Types first: a signal's exception between the two never leaves lines on disk
            # that the sidecar does not describe.
            if records is None:
                self._untyped = True
            else:
                add = self._signatures.add
                for r in records:  # one (keys, types) pair per shape of event: a handful
                    add((tuple(r), tuple(map(type, r.values()))))
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                self._size += n  # counted as it lands, so a seal never drops written lines
                view = view[n:]
        except OSError as exc:
            self._lose(len(lines))
            if self._fd is not None:
                self._size = start
                self._abandon_partial(seal=roll)
            _internal.report("store_write", exc, reraise=False)
            return
        except BaseException:
            # A signal's exception (gunicorn's SystemExit on a request thread), before, during
            # or after the write: what reached the file whole is kept, the rest counted lost.
            self._interrupted(start, len(data), len(lines))
            raise
        if roll and self._size >= self.segment_bytes:
            self.seal()

    def _lose(self, lines: int) -> None:
        self.lines_lost += lines
        _internal.STATS["events_lost"] += lines

    def _interrupted(self, start: int, size: int, lines: int) -> None:
        """After an exception that is not the disk's, at *start* of a write of *size* bytes."""
        fd = self._fd
        if fd is None:  # before a segment was open
            self._lose(lines)
            return
        try:
            on_disk = os.fstat(fd).st_size - start
        except OSError:
            on_disk = -1
        if on_disk == size:  # written, only not yet counted
            self._size = start + size
            return
        self._lose(lines)
        if on_disk > 0:  # part of it: cut back to the last batch, as for a failed write
            self._size = start
            self._abandon_partial(seal=False)

    @property
    def has_lines(self) -> bool:
        return self._size > 0

    def ready(self) -> bool:
        """A segment is open with room: a write only appends (creates and seals nothing)."""
        return self._fd is not None and self._size < self.segment_bytes

    def _abandon_partial(self, *, seal: bool) -> None:
        # Cut the segment back to the last complete batch. On the worker, seal it too: the
        # next batch starts a fresh segment (which is how writing resumes once space is back
        # after a file-size limit); an app thread leaves that to the worker's next flush.
        fd = self._fd
        if fd is None:
            return
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            # Torn bytes that cannot be cut: let the segment go unsealed, as a killed writer
            # would. The ingester claims it and cuts it back to its last whole line.
            self._let_go()
            return
        if seal:
            self.seal()

    def seal(self) -> bool:
        """Close the current segment and make it visible to the ingester; True when it
        held lines."""
        fd, path, size = self._fd, self._path, self._size
        signatures, untyped = self._signatures, self._untyped
        self._fd, self._path, self._size = None, None, 0
        self._signatures, self._untyped = set(), False
        if fd is None or path is None:
            return False
        try:
            # The file's own size: a signal's exception can land between a write and the
            # count of its bytes, and what is on disk must never be unlinked as empty.
            size = max(size, os.fstat(fd).st_size)
        except OSError:
            pass
        base = path.name[: -len(OPEN_SUFFIX)]
        try:
            # Sidecar and rename while the segment is still locked: an ingester never claims
            # it half-sealed (the lock goes with the file, under its new name, until close).
            if not size:
                os.unlink(path)
                return False
            if not untyped:
                self._write_types(path.with_name(base + TYPES_SUFFIX), signatures)
            os.rename(path, path.with_name(base + SEALED_SUFFIX))
        except OSError as exc:
            _internal.report("store_write", exc, reraise=False)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        return True

    def prepare(self) -> None:
        """Open the next segment now, so the next write only appends (an app thread's export
        then never creates a file). A failure here is left to that write to count."""
        if self._fd is None:
            try:
                self._open()
            except OSError:
                pass

    @staticmethod
    def _write_types(path: Path, signatures: set[Signature]) -> None:
        types: dict[str, set[str]] = {}
        for keys, classes in signatures:
            for key, cls in zip(keys, classes, strict=True):
                types.setdefault(key, set()).add(type_name(cls))
        data = orjson.dumps({k: sorted(v) for k, v in types.items()})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: the segment is the parent's; start a new one on the next write."""
        self._let_go()

    def _let_go(self) -> None:
        fd = self._fd
        self._fd, self._path, self._size = None, None, 0
        self._signatures, self._untyped = set(), False
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
