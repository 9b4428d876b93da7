"""The DuckDB sink's background ingester: ``python -m wideevents.store.background --db PATH``.

Every process of an app starts one every few seconds (each gunicorn worker has its own
sink), and all but one find the store busy: so it takes the store lock *before* importing
DuckDB, and a loser exits having cost a few milliseconds instead of the ~0.2 s of CPU that
importing DuckDB takes. The winner runs at a lower CPU priority (nice 10) on one DuckDB
thread, so on a busy machine the app's requests come before the ingest.
"""

from __future__ import annotations

import argparse
import contextlib
import os

from .paths import StorePaths

NICENESS = 10


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
        from .ingest import ingest_locked, report_set_aside  # DuckDB, once the store is ours

        report_set_aside(ingest_locked(paths, threads=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
