"""The default sink: events into the embedded DuckDB store, without the app opening DuckDB.

The app's worker appends JSON lines to its own spool segment (see ``wideevents.store.spool``)
and seals it every flush interval when it holds lines; an HTTP integration's thread may also
append a batch right after a response, but only to a segment the worker opened (it never
creates, seals or rolls one). Every ``ingest_interval`` seconds, when 64 MiB of sealed
segments are waiting or the oldest is a minute old, and neither a background ingester nor
anybody else holds the store, it starts a background ingester as a separate process
(``wideevents.store.background``: one per store; it ingests at a lower CPU priority on one
thread, then stays and ingests by the same rule, waiting for a quieter moment while the
host's CPUs are busy, until nothing has waited for a minute), so DuckDB's CPU, memory and
file lock never land in the app's process.
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
from ..store.spool import SpoolWriter
from ._base import Batch, Sink

# Ingesters a sink let go of (at shutdown) while they still ran: they finish on their own, and
# are reaped here (kept referenced, so dropping them raises no "still running" warning).
_DETACHED: list[subprocess.Popen[bytes]] = []


class DuckDBSink(Sink):
    """Events into the DuckDB file at *path* (default ``WIDEEVENTS_DB`` or
    ``./wideevents.duckdb``).

    ``ingest_interval``: seconds between checks whether a background ingester run is due; 0
    turns the background ingester off (run ``wideevents ingest --follow`` instead).
    ``WIDEEVENTS_INGEST_INTERVAL`` sets the default (5); ``WIDEEVENTS_INGEST_AGE`` (default
    60) is how old the oldest waiting segment may get before a run starts with less than
    64 MiB waiting; ``WIDEEVENTS_INGEST_LINGER`` (default 60) is how long the ingester stays
    once nothing waits (0: it leaves after each run); ``WIDEEVENTS_INGEST_MAX_DEFER``
    (default 300) is how long a due run may wait while the host's CPUs are more than 75%
    busy (0: never).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, ingest_interval: float | None = None
    ) -> None:
        self.paths = StorePaths.for_db(path or default_db_path())
        self.writer = SpoolWriter(self.paths)
        if ingest_interval is None:
            ingest_interval = float(os.environ.get("WIDEEVENTS_INGEST_INTERVAL", "5"))
        self.ingest_interval = ingest_interval
        self.ingest_age = float(os.environ.get("WIDEEVENTS_INGEST_AGE", background.AGE))
        self.ingest_linger = float(os.environ.get("WIDEEVENTS_INGEST_LINGER", background.LINGER))
        self.ingest_max_defer = float(
            os.environ.get("WIDEEVENTS_INGEST_MAX_DEFER", background.MAX_DEFER)
        )
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
            if self.paths.ingester_running():
                return  # it ingests ours too, when due (one lock probe, not a spool scan)
            if not background.worth_ingesting(self.paths.spool, self.ingest_age):
                return
            if self.paths.is_locked():
                return  # another process is at it: it takes ours too
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
                argv = background.command(
                    self.paths,
                    interval=self.ingest_interval,
                    age=self.ingest_age,
                    linger=self.ingest_linger,
                    max_defer=self.ingest_max_defer,
                )
                self._ingester = subprocess.Popen(
                    argv,
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

    def shutdown(self, timeout: float | None = None) -> None:
        # A running ingester finishes, and leaves, on its own (its own session and locks).
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
