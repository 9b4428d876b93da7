"""The DuckDB sink's background ingester, a process of its own.

Every process of an app may start one every few seconds (each gunicorn worker has its own
sink). The sink first checks that nobody holds the store (``StorePaths.is_locked``), and the
process it starts runs :data:`BOOTSTRAP`: a few lines that take the store lock with nothing
but ``fcntl`` imported, so one that loses a race exits after the interpreter's start (~15 ms
of CPU) instead of after importing wideevents (~80 ms). The winner lowers its CPU priority
(nice 10) before importing anything else and ingests on one DuckDB thread, so on a busy
machine the app's requests come before the ingest.

``python -m wideevents.store.background --db PATH`` does the same from a shell.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .paths import StorePaths

NICENESS = 10

# Run as ``python -c BOOTSTRAP wideevents.store.background --db DB --lock LOCK`` (the module
# name in argv tells `ps` what it is). Keep it to the standard library until the lock is held.
BOOTSTRAP = f"""\
import fcntl, os, sys
os.umask(0o077)
fd = os.open(sys.argv[-1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(0)
try:
    os.nice({NICENESS})
except OSError:
    pass
from wideevents.store.background import ingest_holding_lock
sys.exit(ingest_holding_lock(sys.argv[-3]))
"""


def command(paths: StorePaths) -> list[str]:
    """The argv that starts a background ingester of the store at *paths*."""
    return [
        sys.executable,
        "-c",
        BOOTSTRAP,
        "wideevents.store.background",
        "--db",
        str(paths.db),
        "--lock",
        str(paths.lock_file),
    ]


def ingest_holding_lock(db: str) -> int:
    """Ingest the store at *db*; the caller holds its lock at the lower priority already."""
    from .ingest import ingest_locked, report_set_aside  # DuckDB, once the store is ours

    report_set_aside(ingest_locked(StorePaths.for_db(db), threads=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wideevents.store.background")
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    os.umask(0o077)
    paths = StorePaths.for_db(args.db)
    with paths.lock(exclusive=True, timeout=0) as held:
        if not held:
            return 0  # another process is ingesting: it will take our segments too
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
        return ingest_holding_lock(str(paths.db))


if __name__ == "__main__":
    raise SystemExit(main())
