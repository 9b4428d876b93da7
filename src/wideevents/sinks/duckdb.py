"""The default sink: events into the embedded DuckDB store, without the app opening DuckDB.

The app's worker appends JSON lines to its own spool segment (see ``wideevents.store.spool``)
and seals it every flush interval when it holds lines; an HTTP integration's thread may also
append a batch right after a response, but only to a segment the worker opened (it never
creates, seals or rolls one). Every ``ingest_interval`` seconds, when 32 MiB of sealed
segments are waiting or the oldest is a minute old, and nobody holds the store, it starts a
background ingester as a separate process (``wideevents.store.background``: one at a time;
it exits at once if another process took the store meanwhile, and ingests at a lower CPU
priority on one thread), so DuckDB's CPU, memory and file lock never land in the app's
process.
``wideevents ingest --follow`` and every CLI query ingest too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .. import _internal
from ..store import background
from ..store.paths import StorePaths, default_db_path
from ..store.spool import SEALED_SUFFIX, SpoolWriter
from ._base import Batch, Sink

INGEST_BYTES = 32 << 20  # about 40k wide events

# Ingesters a sink let go of (at shutdown) while they still ran: they finish on their own, and
# are reaped here (kept referenced, so dropping them raises no "still running" warning).
_DETACHED: list[subprocess.Popen[bytes]] = []


class DuckDBSink(Sink):
    """Events into the DuckDB file at *path* (default ``WIDEEVENTS_DB`` or
    ``./wideevents.duckdb``).

    ``ingest_interval``: seconds between background ingester runs; 0 turns them off (run
    ``wideevents ingest --follow`` instead). ``WIDEEVENTS_INGEST_INTERVAL`` sets the default;
    ``WIDEEVENTS_INGEST_AGE`` (default 60) is how old the oldest waiting segment may get
    before a run starts with less than 32 MiB waiting.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, ingest_interval: float | None = None
    ) -> None:
        self.paths = StorePaths.for_db(path or default_db_path())
        self.writer = SpoolWriter(self.paths)
        if ingest_interval is None:
            ingest_interval = float(os.environ.get("WIDEEVENTS_INGEST_INTERVAL", "5"))
        self.ingest_interval = ingest_interval
        self.ingest_age = float(os.environ.get("WIDEEVENTS_INGEST_AGE", "60"))
        self._last_ingest = time.monotonic()
        self._ingester: subprocess.Popen[bytes] | None = None

    inline_safe = True  # export is a buffered append to the process's own spool segment

    @property
    def path(self) -> str:
        return str(self.paths.db)

    def export(self, batch: Batch) -> None:
        # On an app thread (inline_safe) only append: sealing is left to the worker.
        self.writer.write(batch.lines, batch.records, roll=_internal.on_worker())

    def inline_ready(self) -> bool:
        return self.writer.ready()

    def flush(self, timeout: float | None = None) -> bool:
        if not _internal.on_worker():
            self.writer.seal()  # an explicit flush(): no file opened, no process started
            return True
        if self.writer.has_lines:
            self.writer.seal()
            # Events flow: the next segment is opened here, so that an app thread's export
            # only appends. Idle, an empty one stays open until events come or shutdown.
            self.writer.prepare()
        if self.ingest_interval > 0:
            self._maybe_ingest()
        return True

    def _maybe_ingest(self) -> None:
        _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]
        proc = self._ingester
        if proc is not None:
            if proc.poll() is None:
                return  # still running
            self._ingester = None
        now = time.monotonic()
        if now - self._last_ingest < self.ingest_interval:
            return
        self._last_ingest = now
        try:
            if not self._worth_ingesting() or self.paths.is_locked():
                return  # nothing to do, or another process is at it (it takes ours too)
            if not os.path.basename(sys.executable or "").startswith(("python", "pypy")):
                # Embedded interpreters (uWSGI, mod_wsgi) have no python to start.
                raise OSError(
                    f"{sys.executable!r} is not a Python interpreter: run "
                    "`wideevents ingest --follow` beside the app instead"
                )
            log = os.open(
                self.paths.spool / "ingester.log",
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                0o600,
            )
            try:
                self._ingester = subprocess.Popen(
                    background.command(self.paths),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(log)
        except OSError as exc:
            self.ingest_interval = 0.0  # logged once; do not try again every few seconds
            _internal.report("ingest_start", exc, reraise=False)

    def _worth_ingesting(self) -> bool:
        # Every ingest commits a partly filled row group that the next one rewrites: wait
        # until a good batch is waiting, or until the oldest segment is a minute old.
        waiting = 0
        oldest = time.time()
        for entry in os.scandir(self.paths.spool):
            if entry.name.endswith(SEALED_SUFFIX):
                st = entry.stat()
                waiting += st.st_size
                oldest = min(oldest, st.st_mtime)
        if not waiting:
            return False
        return waiting >= INGEST_BYTES or time.time() - oldest >= self.ingest_age

    def shutdown(self, timeout: float | None = None) -> None:
        # A running ingester finishes on its own (its own session, the store's lock).
        self.writer.seal()
        proc, self._ingester = self._ingester, None
        if proc is not None and proc.poll() is None:
            _DETACHED.append(proc)

    def after_fork(self) -> None:
        self.writer.forget_after_fork()
        # The parent's ingesters are not this process's children: nothing to wait for.
        for proc in [self._ingester, *_DETACHED]:
            if proc is not None and proc.returncode is None:
                proc.returncode = 0
        self._ingester = None
        _DETACHED.clear()


def from_spec(arg: str) -> DuckDBSink:
    return DuckDBSink(arg or None)
