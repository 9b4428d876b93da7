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
~0.2 s of CPU that importing DuckDB and wideevents costs. Started by an app, a run that
falls due while the host's CPUs are busy waits for a quieter moment (:func:`should_wait`),
up to five minutes or 256 MiB waiting: an ingest run slows the app's requests on a busy
host, even at the lowest priority, because it shares the CPUs' caches with them.

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
DEFER_BYTES = 4 * INGEST_BYTES  # a due run waits for a quieter host at most this long
INTERVAL = 5.0
AGE = 60.0
LINGER = 60.0
MAX_DEFER = 300.0  # how long a due run may wait for a quieter host (the app's default)
BUSY_SHARE = 0.75  # of all the host's CPUs, over the last interval: busy above it
MAX_LIFE = 3600.0  # then it leaves, for one with the app's current code and settings

# Run as ``python -c BOOTSTRAP wideevents.store.background --db DB … --lock LOCK`` (the module
# name in argv tells `ps` what it is). Keep it to the standard library until the lock is held.
# A sink's probe holds the lock shared for a few microseconds: a busy lock is tried again for
# LOCK_PATIENCE seconds before it counts as another ingester's (here and in main()).
LOCK_PATIENCE = 0.5
BOOTSTRAP = f"""\
import fcntl, os, sys, time
os.umask(0o077)
fd = os.open(sys.argv[-1], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
deadline = time.monotonic() + {LOCK_PATIENCE!r}
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.monotonic() >= deadline:
            sys.exit(0)
        time.sleep(0.01)
try:
    os.nice({NICENESS})
except OSError:
    pass
from wideevents.store.background import bootstrapped
sys.exit(bootstrapped(sys.argv[2:-2], os.fstat(fd).st_ino))
"""


def command(
    paths: StorePaths,
    *,
    interval: float = INTERVAL,
    age: float = AGE,
    linger: float = 0.0,
    max_defer: float = 0.0,
) -> list[str]:
    """The argv that starts a background ingester of the store at *paths*."""
    return [
        sys.executable,
        "-c",
        BOOTSTRAP,
        "wideevents.store.background",
        "--db",
        str(paths.db),
        "--interval",
        repr(interval),
        "--age",
        repr(age),
        "--linger",
        repr(linger),
        "--max-defer",
        repr(max_defer),
        "--lock",
        str(paths.ingester_lock),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wideevents.store.background",
        description="Ingest the store's spooled events at a lower CPU priority, once or (with "
        "--linger) for as long as events come; leave if another ingester runs (its lock "
        "stays taken for half a second).",
    )
    parser.add_argument("--db", required=True, help="the store's DuckDB file")
    parser.add_argument(
        "--interval", type=float, default=INTERVAL, help="seconds between checks (default 5)"
    )
    parser.add_argument(
        "--age",
        type=float,
        default=AGE,
        help="with --linger, ingest when the oldest segment is this many seconds old, or "
        "64 MiB wait (default 60)",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="stay until nothing has waited for this many seconds (default 0: leave after "
        "the first run)",
    )
    parser.add_argument(
        "--max-defer",
        type=float,
        default=0.0,
        help="let a due run wait up to this many seconds (and 256 MiB waiting) while the "
        "host's CPUs are busy (default 0: never)",
    )
    return parser


def worth_ingesting(spool: Path, age: float, now: float | None = None) -> bool:
    """Whether a run is due: 64 MiB of sealed segments wait, or the oldest is *age* s old.

    Every run commits a partly filled row group that the next one rewrites, so runs wait
    for a good batch unless events come slowly.
    """
    return _due(*_waiting(spool), age, now)


def _due(waiting: int, oldest: float, age: float, now: float | None = None) -> bool:
    return waiting > 0 and (waiting >= INGEST_BYTES or (now or time.time()) - oldest >= age)


def _waiting(spool: Path) -> tuple[int, float]:
    """Bytes of sealed segments in *spool* and the oldest one's mtime."""
    waiting = 0
    oldest = time.time()
    with os.scandir(spool) as entries:
        for entry in entries:
            if entry.name.endswith(SEALED_SUFFIX) and not entry.name.startswith("."):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # ingested meanwhile
                waiting += st.st_size
                oldest = min(oldest, st.st_mtime)
    return waiting, oldest


class _HostLoad:
    """The share of all CPUs busy between two readings of ``/proc/stat`` (Linux only; in a
    container, the host's), this process's own CPU left out."""

    _TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self) -> None:
        self._last = self._read()

    @classmethod
    def _read(cls) -> tuple[float, float] | None:
        try:
            with open("/proc/stat", "rb") as f:
                fields = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        busy = user + nice + system + irq + softirq + steal  # steal: not ours to use either
        own = os.times()
        return busy - (own.user + own.system) * cls._TICK, busy + idle + iowait

    def busy_share(self) -> float | None:
        """Since the last call (or creation); None when it cannot tell."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return max(0.0, (now[0] - last[0]) / (now[1] - last[1]))


def should_wait(busy: float | None, waited: float, backlog: int, max_defer: float) -> bool:
    """Whether a due run waits for a quieter moment: while the host's CPUs are more than
    :data:`BUSY_SHARE` busy, for at most *max_defer* seconds and :data:`DEFER_BYTES`."""
    return busy is not None and busy > BUSY_SHARE and waited < max_defer and backlog < DEFER_BYTES


def linger(
    paths: StorePaths,
    *,
    interval: float,
    age: float,
    linger: float,
    max_defer: float = 0.0,
    lock_inode: int | None = None,
) -> int:
    """Ingest now, then every *interval* s when due, until nothing has waited for *linger* s.

    With *max_defer*, a due run waits while the host is busy (:func:`should_wait`), so an
    app that keeps the CPUs busy for a while is not slowed by its ingest; past *max_defer*
    seconds or :data:`DEFER_BYTES` waiting it runs anyway (and says so on stderr). A run
    waiting for a quiet host is never given up: the process stays until it has run,
    whatever *linger* says.

    The caller holds the ingester lock at the lower priority. Each run takes the store lock
    without waiting: when a query or another ingester holds it (and takes our segments
    too), the run is tried again at the next check; an app's ingester (*max_defer* set)
    stays for it. After :data:`MAX_LIFE` seconds the process leaves at the first check
    where no run waits for a quiet host or a free store, so the app's next check starts one
    with its current code and settings; it also leaves when the store's folder, or its lock
    file (*lock_inode*: the one it holds), is removed or replaced.
    """
    started = time.monotonic()
    if lock_inode is None:
        try:
            lock_inode = os.stat(paths.ingester_lock).st_ino
        except FileNotFoundError:
            return 0
    load = _HostLoad()
    if max_defer > 0:
        time.sleep(min(max(interval, 0.1), 1.0))  # a first reading of the host's load
    due = True  # whoever started this process found a run due
    due_since: float | None = None
    quiet_since = time.monotonic()
    while True:
        try:
            waiting, oldest = _waiting(paths.spool)
            if os.stat(paths.ingester_lock).st_ino != lock_inode:
                return 0  # the store was removed and made again: another ingester's now
        except FileNotFoundError:
            return 0  # the store was removed
        due = due or _due(waiting, oldest, age)
        now = time.monotonic()
        busy = load.busy_share() if max_defer > 0 else None
        held_off = False
        if due and not waiting:
            due, due_since = False, None  # a query ingested it all meanwhile
        if due:
            due_since = now if due_since is None else due_since
            held_off = should_wait(busy, now - due_since, waiting, max_defer)  # stays for it
            if not held_off:
                with paths.lock(exclusive=True, timeout=0) as held:
                    if held and not _waiting(paths.spool)[0]:
                        due, due_since = False, None  # a query took it all meanwhile
                    elif held:
                        if busy is not None and busy > BUSY_SHARE:
                            print(
                                f"wideevents: ingesting on a busy host ({busy:.0%} of the "
                                f"CPUs) after {now - due_since:.0f} s, {waiting >> 20} MiB "
                                "waiting",
                                file=sys.stderr,
                                flush=True,
                            )
                        from .ingest import ingest_locked, report_set_aside  # DuckDB, once

                        report_set_aside(ingest_locked(paths, threads=1))
                        due, due_since = False, None
                    else:
                        held_off = max_defer > 0  # an app's ingester stays to try again
                if not due:
                    now = quiet_since = time.monotonic()  # the run was the last activity
        if waiting:
            quiet_since = now
        if not held_off and (now - quiet_since >= linger or now - started >= MAX_LIFE):
            return 0
        time.sleep(max(interval, 0.1))


def _linger_as_told(args: argparse.Namespace, lock_inode: int | None = None) -> int:
    return linger(
        StorePaths.for_db(args.db),
        interval=args.interval,
        age=args.age,
        linger=args.linger,
        max_defer=args.max_defer,
        lock_inode=lock_inode,
    )


def bootstrapped(argv: list[str], lock_inode: int) -> int:
    """:data:`BOOTSTRAP`'s entry, holding the ingester lock (the file *lock_inode*) at the
    lower priority."""
    return _linger_as_told(_parser().parse_args(argv), lock_inode)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o077)
    # Tried as BOOTSTRAP tries it: a sink's probe holds it shared for a few microseconds,
    # which must not pass for another ingester.
    with StorePaths.for_db(args.db).hold_ingester_lock(patience=LOCK_PATIENCE) as held:
        if not held:
            return 0  # another ingester is running: it will take our segments too
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
        return _linger_as_told(args)


if __name__ == "__main__":
    raise SystemExit(main())
