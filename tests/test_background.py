"""The background ingester's life: started by the app, staying while events flow, leaving.

Real processes (``wideevents.store.background`` started by the DuckDB sink or from argv),
real locks and a real DuckDB file.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import wideevents
from wideevents import event
from wideevents.sinks.duckdb import DuckDBSink
from wideevents.store import background
from wideevents.store.ingest import ingest_store
from wideevents.store.paths import StorePaths

from .test_store import query


def _until(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return int(query(db, "SELECT count(*) FROM events")[0][0])
    except duckdb.Error:
        return 0


def _app_sink(
    db: Path, *, linger: float, interval: float = 0.05, flush_interval: float = 0.02
) -> DuckDBSink:
    """The default client on a DuckDB sink whose ingester starts at the first event."""
    sink = DuckDBSink(db, ingest_interval=interval)
    sink._last_ingest -= interval  # the first check at the first flush
    sink.ingest_age = 0.0  # do not wait for a big batch
    sink.ingest_linger = linger
    sink.ingest_max_defer = 0.0  # the suite keeps the CPUs busy: never wait for a quiet host
    wideevents.configure("svc", sinks=[sink], flush_interval=flush_interval)
    return sink


def _started(db: Path, n: int, *, linger: float, interval: float = 0.05) -> DuckDBSink:
    """An app sink whose ingester has started and stored *n* events (see :func:`_app_sink`)."""
    sink = _app_sink(db, linger=linger, interval=interval)
    _emit(n)
    assert _until(lambda: _stored(db) == n)
    return sink


def _emit(n: int, name: str = "op") -> None:
    for _ in range(n):
        with event(name):
            pass


def _spooled(db: Path, n: int) -> None:
    """*n* events sealed in the spool of *db*, with no ingester started: a run is due."""
    wideevents.configure("svc", sinks=[DuckDBSink(db, ingest_interval=0)], flush_interval=0.02)
    _emit(n)
    wideevents.shutdown()


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def test_the_app_starts_an_ingester_process_on_its_own(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    _started(db, 1, linger=0)


def test_the_ingester_stays_and_ingests_what_comes_later_itself(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    sink = _started(db, 3, linger=30)
    proc = sink._ingester
    assert proc is not None and proc.poll() is None
    paths = StorePaths.for_db(db)
    try:
        assert paths.ingester_running()
        assert not paths.is_locked()  # it holds the store only while it ingests
        for batch in range(1, 4):
            _emit(5)
            assert _until(lambda b=batch: _stored(db) == 3 + 5 * b)  # type: ignore[misc]
        assert sink._ingester is proc and proc.poll() is None  # the same process did it all
        assert (paths.spool / "ingester.log").read_bytes() == b""
    finally:
        _stop(proc)


def test_a_second_sink_starts_none_while_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ev.duckdb"
    started: list[list[str]] = []
    popen = subprocess.Popen

    def counting_popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(argv)
        return popen(argv, **kwargs)

    monkeypatch.setattr("wideevents.sinks.duckdb.subprocess.Popen", counting_popen)
    first = _started(db, 1, linger=30, interval=2)  # its ingester looks every 2 s
    proc = first._ingester
    try:
        wideevents.shutdown()  # the first "worker" exits; its ingester stays
        assert proc is not None and proc.poll() is None
        second = _app_sink(db, linger=30)  # this one would look every 50 ms
        _emit(4)
        assert _until(lambda: _stored(db) == 5)
        assert second._ingester is None
        assert len(started) == 1
    finally:
        _stop(proc)


def test_the_ingester_leaves_once_nothing_has_waited_for_its_linger(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    sink = _started(db, 2, linger=5.0)
    proc = sink._ingester
    assert proc is not None
    assert proc.poll() is None  # it stays a while after its run
    wideevents.shutdown()
    assert proc.wait(timeout=30) == 0
    assert not StorePaths.for_db(db).ingester_running()


@pytest.mark.parametrize("made_again", [False, True])
def test_the_ingester_leaves_when_the_store_is_removed(tmp_path: Path, made_again: bool) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "ev.duckdb"
    sink = _started(db, 1, linger=300)
    proc = sink._ingester
    assert proc is not None
    wideevents.shutdown()
    shutil.rmtree(folder)
    if made_again:  # as `wideevents demo` does: the old ingester's lock is on a deleted file
        folder.mkdir()
        StorePaths.for_db(db).ensure_spool()
        StorePaths.for_db(db).ingester_lock.touch()
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    assert folder.exists() == made_again  # it did not bring the store back


def test_a_query_gets_the_store_while_the_ingester_stays(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    sink = _started(db, 1, linger=30)
    proc = sink._ingester
    try:
        assert proc is not None and proc.poll() is None
        _emit(2)
        wideevents.flush()
        result = ingest_store(db, lock_timeout=5)  # as every CLI query does first
        assert result is not None
        assert _stored(db) == 3
        assert proc.poll() is None
    finally:
        _stop(proc)


def test_a_background_ingester_that_finds_one_running_leaves_before_importing_duckdb(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ev.duckdb"
    _spooled(db, 2)
    paths = StorePaths.for_db(db)
    probe = (
        "import sys; from wideevents.store.background import main; "
        f"code = main(['--db', {str(db)!r}]); "
        "print(code, 'duckdb' in sys.modules, __import__('os').nice(0))"
    )

    def run() -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    with paths.hold_ingester_lock() as held:
        assert held
        assert run() == ["0", "False", "0"]  # left at once, at its own priority
    with paths.lock(exclusive=True, timeout=1):
        # A query holds the store: this run is skipped (the query's process ingests first).
        assert run() == ["0", "False", "10"]
    assert not db.exists()
    assert run() == ["0", "True", "10"]  # free: it ingests, with DuckDB, at a lower priority
    assert db.exists()


def test_the_started_ingester_takes_its_lock_before_importing_anything_of_ours(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ev.duckdb"
    _spooled(db, 2)
    paths = StorePaths.for_db(db)
    argv = background.command(paths)
    argv[1:1] = ["-X", "importtime"]  # every import, on stderr

    def imported(done: subprocess.CompletedProcess[str]) -> list[str]:
        assert done.returncode == 0, done.stderr
        return [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]

    with paths.hold_ingester_lock():
        busy = imported(subprocess.run(argv, capture_output=True, text=True, timeout=60))
    assert "fcntl" in busy
    assert not [m for m in busy if m.startswith(("wideevents", "duckdb", "orjson"))]
    assert not db.exists()
    paths.ingester_lock.unlink()  # made by hold_ingester_lock() above: the started one makes it
    free = imported(subprocess.run(argv, capture_output=True, text=True, timeout=60))
    assert "duckdb" in free
    assert db.exists()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.ingester_lock).st_mode) == 0o600


@pytest.mark.parametrize("started_by", ["sink", "shell"])
def test_an_apps_probe_of_the_ingester_lock_does_not_turn_an_ingester_away(
    tmp_path: Path, started_by: str
) -> None:
    """A sink's probe holds the ingester lock shared for a moment; a starting ingester that
    meets it tries again instead of leaving as if another ingester ran: one a sink started
    (BOOTSTRAP) and one started from a shell (``main``)."""
    db = tmp_path / "ev.duckdb"
    _spooled(db, 2)
    paths = StorePaths.for_db(db)
    if started_by == "sink":
        argv = background.command(paths)
    else:
        argv = [sys.executable, "-m", "wideevents.store.background", "--db", str(db)]
    with paths._flock(paths.ingester_lock, exclusive=False, timeout=0) as probing:
        assert probing
        proc = subprocess.Popen(argv)

        def opened_the_lock() -> bool:  # then it is trying it, for half a second
            if proc.poll() is not None:
                return True  # it has already left: the assertions below say why
            try:
                fds = os.listdir(f"/proc/{proc.pid}/fd")
            except FileNotFoundError:
                return True  # it has already left: the assertions below say why
            return any(_link(f"/proc/{proc.pid}/fd/{fd}") == str(paths.ingester_lock) for fd in fds)

        assert _until(opened_the_lock, timeout=30)
        time.sleep(0.05)
        assert proc.poll() is None
    assert proc.wait(timeout=60) == 0
    assert db.exists()


def test_the_app_starts_no_ingester_while_the_store_is_held(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=True, timeout=1):
        assert paths.is_locked()
        sink = _app_sink(db, linger=0)
        _emit(1)
        time.sleep(0.5)  # many worker flushes, each asking whether to start one
        assert sink._ingester is None
    assert not paths.is_locked()
    proc = None

    def started() -> bool:
        nonlocal proc
        proc = sink._ingester  # the worker forgets it once it has ended
        return proc is not None

    assert _until(started), "no ingester once the store was free"
    assert proc is not None and proc.wait(timeout=60) == 0
    assert _stored(db) == 1


@pytest.mark.parametrize("lock", ["store", "ingester"])
def test_the_sink_probes_leave_no_lock_behind(tmp_path: Path, lock: str) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    paths.ensure_spool()
    probe = paths.is_locked if lock == "store" else paths.ingester_running
    seen = []

    def probing() -> None:
        for _ in range(200):
            seen.append(probe())

    t = threading.Thread(target=probing)
    t.start()
    t.join(30)
    assert seen and not any(seen)
    with paths.hold_ingester_lock() as held:
        assert held
        assert paths.ingester_running()


def test_a_run_is_due_for_a_full_row_group_or_an_old_segment(tmp_path: Path) -> None:
    spool = StorePaths.for_db(tmp_path / "ev.duckdb").ensure_spool()
    assert not background.worth_ingesting(spool, age=60)  # nothing sealed
    (spool / "a.jsonl.open").write_bytes(b"x" * background.INGEST_BYTES)  # still written
    (spool / "b.jsonl.bad").write_bytes(b"x" * background.INGEST_BYTES)  # set aside
    (spool / ".c.jsonl").write_bytes(b"x" * background.INGEST_BYTES)  # not a segment
    assert not background.worth_ingesting(spool, age=60)
    half = spool / "c.jsonl"
    half.write_bytes(b"x" * (background.INGEST_BYTES // 2))
    assert not background.worth_ingesting(spool, age=60)
    now = time.time()
    assert background.worth_ingesting(spool, age=60, now=now + 61)  # the oldest is old
    rest = background.INGEST_BYTES - background.INGEST_BYTES // 2
    (spool / "d.jsonl").write_bytes(b"x" * (rest - 1))
    assert not background.worth_ingesting(spool, age=60)  # a byte short
    (spool / "d.jsonl").write_bytes(b"x" * rest)
    assert background.worth_ingesting(spool, age=60)  # a full batch waits


def test_a_due_run_waits_for_a_quiet_host_within_bounds() -> None:
    wait = background.should_wait
    assert wait(0.95, waited=10, backlog=1 << 20, max_defer=300)
    assert not wait(0.50, waited=10, backlog=1 << 20, max_defer=300)  # quiet enough
    assert not wait(None, waited=10, backlog=1 << 20, max_defer=300)  # cannot tell
    assert not wait(0.95, waited=300, backlog=1 << 20, max_defer=300)  # waited long enough
    assert not wait(0.95, waited=10, backlog=background.DEFER_BYTES, max_defer=300)
    assert not wait(0.95, waited=0, backlog=0, max_defer=0)  # the app turned it off


def _burn_every_cpu() -> list[subprocess.Popen[bytes]]:
    code = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"
    cpus = len(os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(cpus)]


def test_on_a_busy_host_a_due_run_waits_then_runs_at_its_bound(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    _spooled(db, 3)
    paths = StorePaths.for_db(db)
    argv = background.command(paths, interval=0.2, age=0, linger=0, max_defer=3)
    burners = _burn_every_cpu()
    proc = None
    err = b""
    try:
        load = background._HostLoad()
        time.sleep(0.5)  # the burners own the CPUs
        busy = load.busy_share()
        if busy is None or busy <= background.BUSY_SHARE + 0.05:
            pytest.skip(f"the burners keep the host only {busy} busy (a CPU quota?)")
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        assert _until(lambda: _stored(db) == 3, timeout=30)
    finally:
        for b in burners:
            b.kill()
            b.wait()
        if proc is not None:
            proc.terminate()
            err = proc.communicate(timeout=10)[1]
    waited = re.search(rb"ingesting on a busy host \(\d+% of the CPUs\) after (\d+) s", err)
    assert waited is not None, err
    assert 3 <= int(waited.group(1)) < 10


def test_on_a_quiet_host_a_due_run_does_not_wait(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    _spooled(db, 3)
    argv = background.command(StorePaths.for_db(db), interval=0.2, age=0, linger=0, max_defer=300)
    load = background._HostLoad()
    try:
        done = subprocess.run(argv, timeout=30)  # were it to wait, it would wait five minutes
    except subprocess.TimeoutExpired:
        busy = load.busy_share()
        if busy is not None and busy > background.BUSY_SHARE:
            pytest.skip(f"the host was busy ({busy:.0%}): waiting was right")
        raise
    assert done.returncode == 0
    assert _stored(db) == 3
