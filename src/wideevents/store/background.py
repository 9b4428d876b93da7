"""The DuckDB sink's background ingester, a process of its own that stays while events flow.

Every process of an app may start one every few seconds (each gunicorn worker has its own
sink). The sink first checks that no ingester is running (``StorePaths.ingester_running``)
and that nobody holds the store (``StorePaths.is_locked``). The process it starts runs
:data:`BOOTSTRAP`: a few lines that take the ingester lock with nothing but ``fcntl``
imported, so one that loses a race exits after the interpreter's start (~15 ms of CPU)
instead of after importing wideevents and DuckDB (~0.2 s). The winner lowers its CPU
priority (nice 10) before importing anything else, ingests at once, and then stays
(:func:`linger`): every ``interval`` seconds it ingests again when the same rule the sink
uses says so (:func:`worth_ingesting`), taking the store lock only for each run so that
queries get their turn. It leaves when the spool has had nothing waiting for ``linger``
seconds, or when the store's folder is gone. Staying saves every run after the first the
~0.2 s of CPU that importing DuckDB and wideevents costs.

``python -m wideevents.store.background --db PATH`` ingests once from a shell (``--linger
SECONDS`` to stay).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from .paths import StorePaths
from .spool import SEALED_SUFFIX

NICENESS = 10
# About one DuckDB row group (122,880 rows) of HTTP events, ~530 bytes each: a run that
# leaves a partly filled row group makes the next run rewrite it. Runs of 60k such events
# cost 5.6 us of CPU per event, of 120k 3.9 us (480k events, one thread).
INGEST_BYTES = 64 << 20
INTERVAL = 5.0
AGE = 60.0
LINGER = 60.0

# Run as ``python -c BOOTSTRAP wideevents.store.background --db DB … --lock LOCK`` (the module
# name in argv tells `ps` what it is). Keep it to the standard library until the lock is held.
# A sink's probe holds the lock shared for a few microseconds: a busy lock is tried again for
# 50 ms before it counts as another ingester's.
BOOTSTRAP = f"""\
import fcntl, os, sys, time
os.umask(0o077)
fd = os.open(sys.argv[-1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
for attempt in range(11):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if attempt == 10:
            sys.exit(0)
        time.sleep(0.005)
try:
    os.nice({NICENESS})
except OSError:
    pass
from wideevents.store.background import bootstrapped
sys.exit(bootstrapped(sys.argv[2:-2]))
"""


def command(
    paths: StorePaths, *, interval: float = INTERVAL, age: float = AGE, linger: float = 0.0
) -> list[str]:
    """The argv that starts a background ingester of the store at *paths*."""
    return [
        sys.executable,
        "-c",
        BOOTSTRAP,
        "wideevents.store.background",
        *_options(paths, interval, age, linger),
        "--lock",
        str(paths.ingester_lock),
    ]


def _options(paths: StorePaths, interval: float, age: float, linger: float) -> list[str]:
    return [
        "--db",
        str(paths.db),
        "--interval",
        repr(interval),
        "--age",
        repr(age),
        "--linger",
        repr(linger),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wideevents.store.background")
    parser.add_argument("--db", required=True)
    parser.add_argument("--interval", type=float, default=INTERVAL, help="seconds between checks")
    parser.add_argument(
        "--age", type=float, default=AGE, help="ingest when the oldest segment is this old"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="stay until nothing has waited for this many seconds (default 0: ingest once)",
    )
    return parser


def worth_ingesting(spool: Path, age: float, now: float | None = None) -> bool:
    """Whether a run is due: 64 MiB of sealed segments wait, or the oldest is *age* s old.

    Every run commits a partly filled row group that the next one rewrites, so runs wait
    for a good batch unless events come slowly.
    """
    waiting, oldest = _waiting(spool)
    if not waiting:
        return False
    return waiting >= INGEST_BYTES or (now or time.time()) - oldest >= age


def _waiting(spool: Path) -> tuple[int, float]:
    """Bytes of sealed segments in *spool* and the oldest one's mtime."""
    waiting = 0
    oldest = time.time()
    with os.scandir(spool) as entries:
        for entry in entries:
            if entry.name.endswith(SEALED_SUFFIX):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # ingested meanwhile
                waiting += st.st_size
                oldest = min(oldest, st.st_mtime)
    return waiting, oldest


def linger(paths: StorePaths, *, interval: float, age: float, linger: float) -> int:
    """Ingest now, then every *interval* s when due, until nothing has waited for *linger* s.

    The caller holds the ingester lock at the lower priority. Each run takes the store lock
    without waiting: when a query or another ingester holds it, this run is skipped.
    """
    due = True  # whoever started this process found a run due
    quiet_since = time.monotonic()
    while True:
        if due:
            with paths.lock(exclusive=True, timeout=0) as held:
                if held:
                    from .ingest import ingest_locked, report_set_aside  # DuckDB, once

                    report_set_aside(ingest_locked(paths, threads=1))
        try:
            waiting, _ = _waiting(paths.spool)
        except FileNotFoundError:
            return 0  # the store was removed
        now = time.monotonic()
        if waiting:
            quiet_since = now
        if now - quiet_since >= linger:
            return 0
        time.sleep(max(interval, 0.1))
        try:
            due = worth_ingesting(paths.spool, age)
        except FileNotFoundError:
            return 0


def bootstrapped(argv: list[str]) -> int:
    """:data:`BOOTSTRAP`'s entry, holding the ingester lock at the lower priority."""
    args = _parser().parse_args(argv)
    paths = StorePaths.for_db(args.db)
    return linger(paths, interval=args.interval, age=args.age, linger=args.linger)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o077)
    paths = StorePaths.for_db(args.db)
    with paths.hold_ingester_lock() as held:
        if not held:
            return 0  # another ingester is running: it will take our segments too
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
        return linger(paths, interval=args.interval, age=args.age, linger=args.linger)


if __name__ == "__main__":
    raise SystemExit(main())
