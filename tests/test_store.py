"""The embedded store with real files, real DuckDB and real processes."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import wideevents
from wideevents import event
from wideevents.sinks.duckdb import DuckDBSink
from wideevents.store import ingest as ingest_module
from wideevents.store import schema
from wideevents.store.ingest import connect, ingest_store
from wideevents.store.paths import StorePaths
from wideevents.store.spool import SpoolWriter

INJECTION = 'x"; DROP TABLE events; --'


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=False, timeout=30):
        con = connect(paths, read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def configure_store(db: Path) -> None:
    wideevents.configure("svc", sinks=[DuckDBSink(db, ingest_interval=0)])


def test_events_land_in_typed_columns_with_any_field_name(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    for i in range(100):
        with event(
            "checkout",
            **{
                "user.id": i,
                "cart.total": i * 1.5,
                "ok": i % 2 == 0,
                "plan": "pro",
                INJECTION: "still a column",
                "select": 1,
                "with space": "s",
                "Mixed.Case": 1,
            },
        ):
            pass
    wideevents.flush()
    result = ingest_store(db)
    assert result is not None
    assert result.rows == 100
    columns = dict(
        query(
            db,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'events'",
        )
    )
    assert columns["user.id"] == "BIGINT"
    assert columns["cart.total"] == "DOUBLE"
    assert columns["ok"] == "BOOLEAN"
    assert columns["plan"] == "VARCHAR"
    assert columns["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert columns[INJECTION] == "VARCHAR"
    assert columns["select"] == "BIGINT"
    assert columns["with space"] == "VARCHAR"
    assert query(db, 'SELECT count(*), sum("user.id"), count(DISTINCT span_id) FROM events') == [
        (100, sum(range(100)), 100)
    ]
    assert query(db, 'SELECT DISTINCT "x""; DROP TABLE events; --" FROM events') == [
        ("still a column",)
    ]


def test_conflicting_types_widen_and_keep_every_value(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    for value in (7, 2.5, "seven"):  # one ingest per type: the column widens twice
        with event("op", v=value):
            pass
        wideevents.flush()
        ingest_store(db)
    ((typ,),) = query(
        db,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'events' AND column_name = 'v'",
    )
    assert typ == "VARCHAR"
    # 7 was widened to DOUBLE first, then to text: the value survives as "7.0".
    assert sorted(v for (v,) in query(db, "SELECT v FROM events")) == ["2.5", "7.0", "seven"]


def test_late_keys_nested_values_and_naive_datetimes(tmp_path: Path) -> None:
    import datetime as dt

    db = tmp_path / "ev.duckdb"
    configure_store(db)
    for i in range(3000):  # far past the JSON reader's default sample of rows
        fields: dict[str, Any] = {"i": i}
        if i == 2999:
            fields.update(late="here", nested={"a": [1, 2]}, when=dt.datetime(2026, 1, 2, 3, 4, 5))
        with event("op", **fields):
            pass
    wideevents.flush()
    ingest_store(db)
    row = query(db, 'SELECT late, nested, "when" FROM events WHERE late IS NOT NULL')
    assert len(row) == 1
    late, nested, when = row[0]
    assert late == "here"
    assert json.loads(nested) == {"a": [1, 2]}
    assert when.replace(tzinfo=None) == dt.datetime(2026, 1, 2, 3, 4, 5)


def test_column_cap_sends_new_fields_to_the_overflow_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MAX_USER_COLUMNS", 3)
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    with event("op", a=1, b=2, c=3, d=4, e="five"):
        pass
    wideevents.flush()
    ingest_store(db)
    ((a, b, c, overflow),) = query(db, 'SELECT a, b, c, "attributes.overflow" FROM events')
    assert (a, b, c) == (1, 2, 3)
    assert json.loads(overflow) == {"d": 4, "e": "five"}


def test_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    old = os.umask(0)
    try:
        configure_store(db)
        with event("op"):
            pass
        wideevents.flush()
        spool = StorePaths.for_db(db).spool
        segments = list(spool.glob("*.jsonl"))
        ingest_store(db)
    finally:
        os.umask(old)
    assert segments
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE((spool / ".lock").stat().st_mode) == 0o600


def test_segment_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        writer = SpoolWriter(StorePaths.for_db(tmp_path / "ev.duckdb"))
        writer.write([b'{"a":1}\n'])
        (segment,) = StorePaths.for_db(tmp_path / "ev.duckdb").spool.glob("*.open")
        mode = stat.S_IMODE(segment.stat().st_mode)
        writer.seal()
    finally:
        os.umask(old)
    assert mode == 0o600


CREATOR_KILLED_MIDWAY = """
import sys, time
from wideevents.store import ingest
def stuck(con):
    print("creating", flush=True)
    time.sleep(60)
ingest.ensure_tables = stuck
ingest.ingest_store(sys.argv[1])
"""


def test_a_store_creator_killed_midway_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    creator = subprocess.Popen(
        [sys.executable, "-c", CREATOR_KILLED_MIDWAY, str(db)], stdout=subprocess.PIPE, text=True
    )
    with creator:  # closes its stdout
        try:
            assert creator.stdout is not None and creator.stdout.readline() == "creating\n"
        finally:
            creator.kill()
    spool = StorePaths.for_db(db).spool
    assert [p.name.startswith(".new-") for p in spool.iterdir() if p.name != ".lock"] == [True]
    assert not db.exists()
    writer = SpoolWriter(StorePaths.for_db(db))
    writer.write([b'{"i":1}\n'])
    writer.seal()
    assert ingest_store(db).rows == 1  # type: ignore[union-attr]
    assert sorted(p.name for p in spool.iterdir()) == [".lock"]


def test_a_segment_is_never_ingested_twice(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    writer = SpoolWriter(paths)
    writer.write([json.dumps({"span_id": f"{i:016x}", "i": i}).encode() + b"\n" for i in range(10)])
    (segment,) = paths.spool.glob("*.open")
    writer.seal()
    sealed = segment.with_name(segment.name.removesuffix(".open"))
    copy = sealed.read_bytes()
    assert ingest_store(db).rows == 10  # type: ignore[union-attr]
    # A crash between the commit and the file's deletion leaves the file behind:
    sealed.write_bytes(copy)
    assert ingest_store(db).rows == 0  # type: ignore[union-attr]
    assert not sealed.exists()
    assert query(db, "SELECT count(*) FROM events") == [(10,)]


def test_an_unreadable_segment_is_set_aside_and_the_rest_ingested(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    spool = paths.ensure_spool()
    (spool / "h-1-1-1.jsonl").write_bytes(b'{"i": 1}\n{"i": 2}\n')
    (spool / "h-1-2-2.jsonl").write_bytes(b'{"i": 3}\n{not json\n')
    (spool / "h-1-3-3.jsonl").write_bytes(b'{"i": 4}\n')
    result = ingest_store(db)
    assert result is not None
    assert result.rows == 3
    assert result.bad == ["h-1-2-2.jsonl.bad"]
    assert (spool / "h-1-2-2.jsonl.bad").exists()
    assert sorted(i for (i,) in query(db, "SELECT i FROM events")) == [1, 2, 4]


def _run(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


WRITER = """
    import sys, wideevents
    n = int(sys.argv[2])
    wideevents.configure("writer", sinks=f"duckdb:{sys.argv[1]}")
    for i in range(n):
        with wideevents.event("job", i=i, writer=sys.argv[3]):
            pass
    wideevents.flush()
    print(wideevents.stats())
"""

QUERIER = """
    import sys, time, json
    from wideevents.store.paths import StorePaths
    from wideevents.store.ingest import connect, ingest
    paths = StorePaths.for_db(sys.argv[1])
    counts = []
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline:
        with paths.lock(exclusive=True, timeout=60):
            con = connect(paths)
            try:
                ingest(con, paths)
                counts.append(con.execute("SELECT count(*) FROM events").fetchall()[0][0])
            finally:
                con.close()
        time.sleep(0.05)
    print(json.dumps(counts))
"""


def test_many_writer_processes_while_another_process_queries(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    # The writers' own ingesters join the fight:
    env = {"WIDEEVENTS_INGEST_INTERVAL": "0.5", "WIDEEVENTS_INGEST_AGE": "0"}
    querier = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(QUERIER), str(db), "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0"},
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(db), "5000", str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0", **env},
        )
        for w in range(8)
    ]
    try:
        for w in writers:
            out, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
            assert err == ""  # no lock error, no warning of any kind
            stats = ast.literal_eval(out)
            assert stats["dropped"] == 0
            assert stats["exported"] == 5000
            assert all(v == 0 for k, v in stats.items() if k.endswith("errors")), stats
        out, err = querier.communicate(timeout=120)
    finally:
        for p in [*writers, querier]:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert querier.returncode == 0, err
    counts = json.loads(out)
    assert len(counts) > 3
    assert counts == sorted(counts)
    ingest_store(db)
    assert query(
        db, "SELECT count(*), count(DISTINCT span_id), count(DISTINCT writer) FROM events"
    ) == [(40_000, 40_000, 8)]
    assert query(
        db, "SELECT count(*) FROM (SELECT writer, i FROM events GROUP BY ALL HAVING count(*) > 1)"
    ) == [(0,)]


KILLED_WRITER = """
    import sys, time, wideevents
    wideevents.configure("victim", sinks=f"duckdb:{sys.argv[1]}")
    i = 0
    while True:
        with wideevents.event("tick", i=i):
            pass
        i += 1
        if i % 200 == 0:
            wideevents.flush()
            print(i, flush=True)
        time.sleep(0.0002)
"""


def test_writer_killed_with_sigkill_loses_at_most_its_last_flush(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0", "WIDEEVENTS_INGEST_INTERVAL": "0"},
    )
    assert proc.stdout is not None
    flushed = 0
    while flushed < 3000:
        flushed = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -9
    result = ingest_store(db)
    assert result is not None
    assert not result.bad
    rows = query(db, "SELECT count(*), count(DISTINCT i), min(i), max(i) FROM events")
    count, distinct, low, high = rows[0]
    assert count == distinct  # nothing twice
    assert low == 0
    assert high >= flushed - 1
    assert count == high + 1  # no gap: whatever arrived is a prefix
    assert ingest_store(db).rows == 0  # type: ignore[union-attr]


def _make_segments(db: Path, n_segments: int, per_segment: int) -> int:
    paths = StorePaths.for_db(db)
    writer = SpoolWriter(paths)
    n = 0
    for _ in range(n_segments):
        lines = []
        for _ in range(per_segment):
            lines.append(
                json.dumps(
                    {
                        "span_id": f"{n:016x}",
                        "i": n,
                        "name": "bulk",
                        "route": f"/r/{n % 50}",
                        "ms": n * 0.5,
                    }
                ).encode()
                + b"\n"
            )
            n += 1
        writer.write(lines)
        writer.seal()
    return n


def test_ingester_killed_mid_batch_is_finished_by_the_next_run(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    total = _make_segments(db, 1200, 250)
    proc = subprocess.Popen([sys.executable, "-m", "wideevents.store.ingest", "--db", str(db)])
    wal = Path(str(db) + ".wal")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wal.exists():
        time.sleep(0.005)
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    result = ingest_store(db)
    assert result is not None
    assert not result.bad
    assert query(db, "SELECT count(*), count(DISTINCT i) FROM events") == [(total, total)]


RLIMITED = """
    import logging, resource, sys, wideevents
    logging.basicConfig(level=logging.WARNING)
    wideevents.configure("full-disk", sinks=f"duckdb:{sys.argv[1]}")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    def burst(tag, n):
        for i in range(n):
            with wideevents.event("op", tag=tag, i=i, pad="x" * 200):
                pass
        wideevents.flush()
    burst("before", 10)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # a tiny disk
    for _ in range(3):
        burst("full", 100)       # each flush is ~40 kB: every write fails
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
    burst("after", 10)
    stats = wideevents.stats()
    print(stats["emitted"], stats.get("store_write_errors", 0), stats.get("events_lost_errors", 0))
"""


def test_full_disk_is_counted_logged_once_and_writing_resumes(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    done = _run(RLIMITED, str(db), env={"WIDEEVENTS_INGEST_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    emitted, write_errors, lost = map(int, done.stdout.split())
    assert emitted == 320
    assert write_errors == 3
    assert lost == 300
    assert done.stderr.count("store_write failed") == 1  # logged once
    ingest_store(db)
    rows = dict(query(db, "SELECT tag, count(*) FROM events GROUP BY tag"))
    assert rows == {"before": 10, "after": 10}


FORKING = """
    import os, sys, wideevents
    wideevents.configure("preload", sinks=f"duckdb:{sys.argv[1]}")
    with wideevents.event("master"):
        pass
    children = []
    for w in range(3):
        pid = os.fork()
        if pid == 0:
            for i in range(300):
                with wideevents.event("request", worker=w, i=i):
                    pass
            wideevents.flush()
            os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    wideevents.flush()
"""


def test_forked_workers_events_arrive(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    done = _run(FORKING, str(db), env={"WIDEEVENTS_INGEST_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    ingest_store(db)
    assert query(
        db,
        'SELECT name, count(*), count(DISTINCT "process.pid") FROM events '
        "GROUP BY name ORDER BY name",
    ) == [("master", 1, 1), ("request", 900, 3)]


def test_a_fork_waits_for_the_apps_lock_probe_to_end() -> None:
    """A child forked while the probe held its shared lock would keep it for its life."""
    from wideevents.store import paths as paths_module

    forked: list[float] = []

    def fork() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        os.waitpid(pid, 0)
        forked.append(time.monotonic())

    with paths_module._PROBING:  # as is_locked() holds it around its open .. close
        t = threading.Thread(target=fork)
        t.start()
        time.sleep(0.3)
        assert not forked, "fork() went ahead in the middle of a probe"
    t.join(10)
    assert forked


def test_a_segments_sidecar_goes_before_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between the two unlinks, the segment (recorded, so deleted unread by the next
    run) stays behind, never a sidecar that nothing would delete."""
    db = tmp_path / "ev.duckdb"
    writer = SpoolWriter(StorePaths.for_db(db))
    writer.write([b'{"span_id": "a", "i": 1}\n'], [{"span_id": "a", "i": 1}])  # with its types
    writer.seal()
    (segment,) = StorePaths.for_db(db).spool.glob("*.jsonl")
    sidecar = ingest_module._types_path(segment)
    assert sidecar.exists()
    order: list[str] = []
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        order.append(self.name)
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    ingest_module._remove(segment)
    assert order == [sidecar.name, segment.name]


def test_types_come_from_the_writers_sidecar_not_a_second_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from wideevents.store import ingest as ingest_module

    def no_detection(*args: Any) -> None:
        raise AssertionError("type detection ran although every segment had its sidecar")

    monkeypatch.setattr(ingest_module, "_detect", no_detection)
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    when = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.timezone.utc)
    for i in range(50):
        value: Any = i if i < 49 else 2.5  # one float among ints: the column must be DOUBLE
        with event("op", v=value, flag=i % 2 == 0, when=when, tags=["a"], **{"odd key": "x"}):
            pass
    wideevents.flush()
    spool = StorePaths.for_db(db).spool
    assert len(list(spool.glob("*.types"))) == len(list(spool.glob("*.jsonl"))) >= 1
    assert ingest_store(db).rows == 50  # type: ignore[union-attr]
    assert list(spool.glob("*.types")) == []
    types = dict(
        query(
            db,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'events'",
        )
    )
    assert types["v"] == "DOUBLE" and types["flag"] == "BOOLEAN"
    assert types["when"] == "TIMESTAMP WITH TIME ZONE" and types["tags"] == "JSON"
    assert query(db, "SELECT max(v), count(*) FILTER (WHERE v = 2.5) FROM events") == [(48.0, 1)]


def test_values_of_unknown_classes_fall_back_to_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enum

    from wideevents.store import ingest as ingest_module

    class Level(enum.IntEnum):
        LOW = 1

    calls = []
    real = ingest_module._detect
    monkeypatch.setattr(ingest_module, "_detect", lambda *a: calls.append(1) or real(*a))
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    with event("op", level=Level.LOW):
        pass
    wideevents.flush()
    ingest_store(db)
    assert calls == [1]
    assert query(db, "SELECT level FROM events") == [(1,)]


def test_a_quiet_live_writer_keeps_its_open_segment(tmp_path: Path) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    writer = SpoolWriter(paths)
    writer.write([b'{"span_id": "a", "i": 1}\n'])
    (segment,) = paths.spool.glob("*.open")
    old = time.time() - 3600
    os.utime(segment, (old, old))  # an hour without a write, but the process lives
    assert ingest_store(db).rows == 0  # type: ignore[union-attr]
    assert segment.exists()
    writer.write([b'{"span_id": "b", "i": 2}\n'])
    writer.seal()
    assert ingest_store(db).rows == 2  # type: ignore[union-attr]


def test_a_failing_store_sets_nothing_aside(tmp_path: Path) -> None:
    import resource

    db = tmp_path / "ev.duckdb"
    total = _make_segments(db, 4, 5000)

    def tiny_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))

    failed = subprocess.run(
        [sys.executable, "-m", "wideevents.cli", "ingest", "--db", str(db)],
        preexec_fn=tiny_disk,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1 and failed.stderr.startswith("Error: ")
    spool = StorePaths.for_db(db).spool
    assert list(spool.glob("*.bad")) == []
    assert len(list(spool.glob("*.jsonl"))) == 4  # still waiting, untouched
    assert ingest_store(db).rows == total  # type: ignore[union-attr]


def test_detected_integers_with_negatives_stay_bigint(tmp_path: Path) -> None:
    # Without a types sidecar DuckDB's reader calls [-1, 2] HUGEINT; they fit a BIGINT.
    db = tmp_path / "ev.duckdb"
    writer = SpoolWriter(StorePaths.for_db(db))
    rows = [
        {"timestamp": "2026-11-26T08:00:00+00:00", "name": "op", "span_id": f"{i:016x}"}
        | {"delta": d, "huge": h}
        for i, (d, h) in enumerate([(-1, 1), (2, 2**63 + 5), (-(2**63), 3)])
    ]
    writer.write([json.dumps(r).encode() + b"\n" for r in rows])  # no records: no sidecar
    writer.seal()
    assert ingest_store(db).rows == 3  # type: ignore[union-attr]
    types = dict(query(db, "SELECT column_name, data_type FROM duckdb_columns()"))
    assert types["delta"] == "BIGINT"
    assert types["huge"] == "VARCHAR"  # past BIGINT: kept exact as text
    assert query(db, 'SELECT sum("delta") FROM events') == [(-(2**63) + 1,)]


def test_odd_field_names_never_wedge_the_store(tmp_path: Path) -> None:
    # An empty name, a NUL, names that differ only in case (from each other, from a column,
    # from a core column): DuckDB cannot tell them apart as columns. They go to the overflow
    # object, every event is stored, and later batches ingest as usual.
    db = tmp_path / "ev.duckdb"
    configure_store(db)
    with event("first", **{"user.userId": "u1"}):
        pass
    wideevents.flush()
    assert ingest_store(db).rows == 1  # type: ignore[union-attr]
    with event("a", **{"user.userid": "u2", "Duration_MS": 5}):
        pass
    with event("b", **{"": "empty", "nul\x00key": 1, "x": 1, "X": 2}):
        pass
    with event("c", **{"user.userId": "u3", "plain": True}):
        pass
    wideevents.flush()
    assert ingest_store(db).rows == 3  # type: ignore[union-attr]
    rows = {
        name: (user, json.loads(extra) if extra else None)
        for name, user, extra in query(
            db, 'SELECT name, "user.userId", "attributes.overflow" FROM events'
        )
    }
    assert rows["first"] == ("u1", None)
    assert rows["a"] == (None, {"user.userid": "u2", "Duration_MS": 5})
    assert rows["b"][1] == {"": "empty", "nul\x00key": 1, "X": 2}
    assert rows["c"] == ("u3", None)
    assert query(
        db, 'SELECT "x", plain FROM events WHERE name IN (?, ?) ORDER BY name', ["b", "c"]
    ) == [(1, None), (None, True)]
    assert not list(StorePaths.for_db(db).spool.glob("*.jsonl*"))  # nothing left behind
    with event("d", later=1):
        pass
    wideevents.flush()
    assert ingest_store(db).rows == 1  # type: ignore[union-attr]


def test_a_segment_being_created_is_not_claimed_but_a_dead_writers_empty_one_is(
    tmp_path: Path,
) -> None:
    """Between a writer's create and its flock the new segment is empty and unlocked."""
    db = tmp_path / "ev.duckdb"
    spool = StorePaths.for_db(db).ensure_spool()
    newborn = spool / "host-1-1-1.jsonl.open"
    newborn.touch()  # created this instant; its writer has not locked it yet
    dead = spool / "host-2-1-1.jsonl.open"
    dead.touch()
    old = time.time() - 2 * ingest_module.NEWBORN_SECONDS
    os.utime(dead, (old, old))  # an empty segment left by a writer killed long ago
    assert ingest_module.claim_abandoned(spool) == 1
    assert newborn.exists() and not dead.exists()


def test_an_abandoned_segment_that_cannot_be_claimed_does_not_stop_the_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ev.duckdb"
    paths = StorePaths.for_db(db)
    spool = paths.ensure_spool()
    writer = SpoolWriter(paths)
    writer.write([b'{"name":"a","i":1}\n'], [{"name": "a", "i": 1}])
    writer.seal()
    (spool / "host-2-1-1.jsonl.open").write_bytes(b'{"name":"b"}\n{"na')  # a dead writer's

    def unreadable(f: Any, size: int) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ingest_module, "_last_line_end", unreadable)
    assert ingest_store(db).rows == 1  # type: ignore[union-attr]
    assert "could not claim" in capsys.readouterr().err
    assert (spool / "host-2-1-1.jsonl.open").exists()  # left for a later run


def test_a_segment_stays_locked_until_it_is_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingester claiming it half-sealed (sidecar written, not yet renamed) would find it."""
    import fcntl

    paths = StorePaths.for_db(tmp_path / "ev.duckdb")
    writer = SpoolWriter(paths)
    writer.write([b'{"name":"a"}\n'], [{"name": "a"}])
    [segment] = paths.spool.glob("*.jsonl.open")
    locked_while_sealing = []
    write_types = SpoolWriter._write_types

    def probing(path: Path, signatures: Any) -> None:
        fd = os.open(segment, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked_while_sealing.append(False)
        except BlockingIOError:
            locked_while_sealing.append(True)
        finally:
            os.close(fd)
        write_types(path, signatures)

    monkeypatch.setattr(SpoolWriter, "_write_types", staticmethod(probing))
    assert writer.seal()
    assert locked_while_sealing == [True]
    assert len(list(paths.spool.glob("*.jsonl"))) == 1
