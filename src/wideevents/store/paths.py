"""Where the store's files live, owner-only file creation, and the lock that serialises access.

For a database ``events.duckdb``:

* ``events.duckdb`` — the DuckDB file (0600);
* ``events.duckdb.spool/`` — the spool folder (0700): ``*.jsonl.open`` segments being written,
  ``*.jsonl`` sealed segments waiting for the ingester, ``*.bad`` segments it could not read;
* ``events.duckdb.spool/.lock`` — ``flock``: exclusive to open the database read-write,
  shared to open it read-only;
* ``events.duckdb.spool/.ingester`` — ``flock``: held by the background ingester for as long
  as it runs, between its runs too (see ``wideevents.store.background``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB = "wideevents.duckdb"


def default_db_path() -> str:
    """``WIDEEVENTS_DB``, else ``./wideevents.duckdb``."""
    return os.environ.get("WIDEEVENTS_DB") or DEFAULT_DB


# Held while the app probes the store lock, and by fork() around the fork.
_PROBING = threading.Lock()
os.register_at_fork(
    before=_PROBING.acquire, after_in_parent=_PROBING.release, after_in_child=_PROBING.release
)


class StoreLocked(TimeoutError):
    """Another process held the store's lock for longer than we were willing to wait."""


@dataclass(frozen=True)
class StorePaths:
    db: Path

    @classmethod
    def for_db(cls, db: str | os.PathLike[str] | None = None) -> StorePaths:
        return cls(Path(os.path.abspath(os.fspath(db or default_db_path()))))

    @property
    def spool(self) -> Path:
        return self.db.with_name(self.db.name + ".spool")

    @property
    def lock_file(self) -> Path:
        return self.spool / ".lock"

    @property
    def ingester_lock(self) -> Path:
        return self.spool / ".ingester"

    def ensure_spool(self) -> Path:
        """Create the spool folder owner-only (0700) if it is missing."""
        spool = self.spool
        try:
            os.mkdir(spool, 0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(spool, 0o700)  # mkdir's mode is filtered by the umask
        return spool

    def lock(
        self, *, exclusive: bool, timeout: float | None
    ) -> contextlib.AbstractContextManager[bool]:
        """Hold the store lock. Yields False (without the lock) when ``timeout == 0`` and busy.

        ``timeout=None`` waits for ever; a positive timeout raises :class:`StoreLocked`.
        """
        return self._flock(self.lock_file, exclusive=exclusive, timeout=timeout)

    def hold_ingester_lock(self, patience: float = 0.0) -> contextlib.AbstractContextManager[bool]:
        """Hold the ingester lock if it is free (yields False when another ingester runs).

        *patience*: seconds to try again while it is busy; a sink's probe holds it shared for
        a few microseconds, which must not pass for a running ingester.
        """
        return self._flock(self.ingester_lock, exclusive=True, timeout=patience, or_not=True)

    @contextlib.contextmanager
    def _flock(
        self, file: Path, *, exclusive: bool, timeout: float | None, or_not: bool = False
    ) -> Iterator[bool]:
        """Hold *file*'s lock; when busy past *timeout*, yield False if that is 0 or *or_not*
        is set, else raise :class:`StoreLocked`."""
        self.ensure_spool()
        fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = None if timeout is None else time.monotonic() + timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                if deadline is not None and time.monotonic() >= deadline:
                    if timeout == 0 or or_not:
                        yield False
                        return
                    raise StoreLocked(
                        f"the store {self.db} stayed locked by another process for {timeout:g} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def is_locked(self) -> bool:
        """Whether another process holds the store lock exclusively (an ingester, a query).

        A probe with a shared lock, released at once: cheap enough for an app's worker
        thread to ask before it starts an ingester process that would only find it busy.
        A ``fork()`` waits for a probe to end (see ``_PROBING``): a child that never execs
        would otherwise keep the probe's lock, and the store, for its whole life.
        """
        return self._probe(self.lock_file)

    def ingester_running(self) -> bool:
        """Whether a background ingester of this store is running (between runs too)."""
        return self._probe(self.ingester_lock)

    def _probe(self, file: Path) -> bool:
        with _PROBING, self._flock(file, exclusive=False, timeout=0) as held:
            return not held


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are owner-only. The umask is process-wide: use it only in a
    process of our own (the CLI, the ingester), never on an application's thread."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
