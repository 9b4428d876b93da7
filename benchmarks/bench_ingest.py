"""The embedded DuckDB store end to end: app-thread cost, ingester rows/s, bytes on disk.

Every event carries the same 25 user fields of a web request (the 20 of
``bench_hot_path.py`` plus 5: strings, among them a uuid request id that changes every time
and low-cardinality route/method/region/tier/build strings, ints, floats, bools) and is
emitted with ``with wideevents.event("op", **fields)``. Everything happens in a temporary
directory:

1. app-thread: the same N events through ``JsonLinesSink`` and through
   ``DuckDBSink(ingest_interval=0)`` (so this benchmark decides when to ingest), interleaved in
   rounds, the first sink alternating; medians over rounds of ``time.thread_time()`` of the
   emitting thread per event, and of ``time.process_time()`` across emit + ``flush()``
   (every thread of the process) per event. Any dropped event aborts the run;
2. ingester: ``python -m wideevents.store.ingest --db PATH`` as a child process, exactly as
   the sink starts it, over all N spooled events: wall time, and CPU time from
   ``getrusage(RUSAGE_CHILDREN)``; then the store is checked (``count(*)`` and
   ``count(DISTINCT span_id)`` are N). A first run on an empty spool (it creates the store)
   shows the ingester's fixed cost (interpreter, ``import duckdb``, opening the file);
3. end to end: N / (emit + flush + ingest wall time);
4. disk: the store's file size / N after ``CHECKPOINT``, the spooled JSON lines per event,
   the same lines as ONE JSON column in a second DuckDB file, an estimate of each
   column's share from ``pragma_storage_info``, and the generated data's information content
   (the floor under any lossless layout);
5. where the ingester's CPU goes: the same reads it does (type detection over every line,
   then the typed read), timed in this process.

    .venv/bin/python benchmarks/bench_ingest.py                # 1,000,000 events
    .venv/bin/python benchmarks/bench_ingest.py --quick        # 200,000 events
    .venv/bin/python benchmarks/bench_ingest.py --events 500000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wideevents
from wideevents.sinks import JsonLinesSink, Sink
from wideevents.sinks.duckdb import DuckDBSink
from wideevents.store.paths import StorePaths
from wideevents.store.spool import OPEN_SUFFIX, SEALED_SUFFIX

if TYPE_CHECKING:
    import duckdb

Fields = dict[str, Any]

N_FIELDS = 25
DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 200_000
ROUND_EVENTS = 50_000
WARMUP_EVENTS = 10_000
TOP_COLUMNS = 8

TARGET_ROWS_PER_CPU_S = 200_000
TARGET_APP_OVERHEAD_PCT = 10.0
TARGET_BYTES_PER_EVENT = 60.0

JSONL = "jsonl"
DUCKDB = "duckdb"


class InvalidMeasurementError(Exception):
    """Work went missing (drops, failed ingest, wrong row count): the figures mean nothing."""


# -- the events --------------------------------------------------------------------------


def fields(n: int, seed: int) -> Iterator[Fields]:
    """*n* field sets of a checkout request; ``request.id`` is new every time."""
    rng = random.Random(seed)
    for _ in range(n):
        yield {
            # the 20 fields of bench_hot_path.py
            "http.method": "POST",
            "http.route": "/api/v1/carts/{cart_id}/checkout",
            "http.status_code": 200 if rng.random() < 0.97 else 503,
            "request.id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user.id": rng.randrange(1, 5_000_000),
            "user.tier": rng.choice(("free", "pro", "enterprise")),
            "user.country": rng.choice(("DE", "FR", "US", "BR", "JP", "IN")),
            "cart.items": rng.randrange(1, 12),
            "cart.total": round(rng.uniform(5.0, 900.0), 2),
            "cart.currency": "EUR",
            "db.calls": rng.randrange(1, 9),
            "db.time_ms": rng.uniform(0.4, 40.0),
            "cache.hit": rng.random() < 0.8,
            "feature.new_checkout": rng.random() < 0.5,
            "payment.provider": rng.choice(("stripe", "adyen", "paypal")),
            "payment.method": rng.choice(("card", "sepa", "wallet")),
            "retry.count": 0 if rng.random() < 0.95 else 1,
            "response.bytes": rng.randrange(200, 5000),
            "cloud.region": "eu-west-1",
            "app.version": "3.14.2",
            # and 5 more
            "app.build": rng.choice(("3.14.2+g1a2b3c4", "3.14.2+g5d6e7f8")),
            "http.user_agent.family": rng.choice(("Chrome", "Safari", "Firefox", "okhttp")),
            "request.bytes": rng.randrange(100, 2000),
            "upstream.time_ms": round(rng.uniform(1.0, 250.0), 3),
            "checkout.express": rng.random() < 0.1,
        }


def _h(*probabilities: float) -> float:
    """Shannon entropy in bits of a choice with these probabilities."""
    return -sum(p * math.log2(p) for p in probabilities if p)


def information_bits() -> dict[str, float]:
    """Bits of information per event in what ``fields()`` generates, field by field.

    Read off the generator above (keep the two in step): a choice among k equally likely
    values carries log2(k) bits, a weighted one its entropy, ``rng.uniform`` a random double
    (53 random bits), a rounded uniform log2 of its distinct values. Every event is a root
    event, so its trace id (128 bits) and span id (64 bits) are random too. Timestamps and
    durations are left out (they depend on the run). No lossless layout can store the data in
    fewer bits than the sum: it is the floor under the disk figure.
    """
    return {
        "http.status_code": _h(0.97, 0.03),
        "request.id": 122.0,  # a version-4 uuid: 128 bits less 6 fixed
        "user.id": math.log2(5_000_000 - 1),
        "user.tier": math.log2(3),
        "user.country": math.log2(6),
        "cart.items": math.log2(11),
        "cart.total": math.log2(89_500 + 1),  # round(uniform(5, 900), 2)
        "db.calls": math.log2(8),
        "db.time_ms": 53.0,  # uniform(0.4, 40.0), full precision
        "cache.hit": _h(0.8, 0.2),
        "feature.new_checkout": 1.0,
        "payment.provider": math.log2(3),
        "payment.method": math.log2(3),
        "retry.count": _h(0.95, 0.05),
        "response.bytes": math.log2(4_800),
        "app.build": 1.0,
        "http.user_agent.family": 2.0,
        "request.bytes": math.log2(1_900),
        "upstream.time_ms": math.log2(249_000 + 1),  # round(uniform(1, 250), 3)
        "checkout.express": _h(0.1, 0.9),
        "trace_id": 128.0,
        "span_id": 64.0,
    }


def round_sizes(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]


# -- small helpers -----------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _us(seconds: float, n: int) -> float:
    return seconds / n * 1e6


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _sealed(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if p.name.endswith(SEALED_SUFFIX))


def _count_lines(paths: list[Path]) -> int:
    lines = 0
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                lines += chunk.count(b"\n")
    return lines


def _children_cpu() -> tuple[float, int]:
    """CPU seconds (user + system) of waited-for children so far, and their peak RSS in KiB."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


# -- 1. the app thread -------------------------------------------------------------------


@dataclass
class Round:
    events: int
    app: float  # seconds of the emitting thread's CPU
    total: float  # seconds of the process's CPU across emit + flush
    emit_wall: float
    flush_wall: float


@dataclass
class SinkResult:
    name: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(r.events for r in self.rounds)

    def app_us(self) -> float:
        return statistics.median(_us(r.app, r.events) for r in self.rounds)

    def total_us(self) -> float:
        return statistics.median(_us(r.total, r.events) for r in self.rounds)

    def spread(self) -> float:
        """(max - min) / median of the app-thread figure, in percent."""
        per = [_us(r.app, r.events) for r in self.rounds]
        return (max(per) - min(per)) / statistics.median(per) * 100

    @property
    def emit_wall(self) -> float:
        return sum(r.emit_wall for r in self.rounds)

    @property
    def flush_wall(self) -> float:
        return sum(r.flush_wall for r in self.rounds)


@dataclass
class AppResult:
    jsonl: SinkResult
    duckdb: SinkResult
    queue_size: int
    duckdb_imported: bool

    @property
    def overhead_pct(self) -> float:
        return (self.duckdb.app_us() / self.jsonl.app_us() - 1) * 100

    @property
    def total_overhead_pct(self) -> float:
        return (self.duckdb.total_us() / self.jsonl.total_us() - 1) * 100

    def paired_overhead_pct(self) -> float:
        """Median over rounds of duckdb/jsonl in the same round (robust to drift)."""
        pairs = zip(self.duckdb.rounds, self.jsonl.rounds, strict=True)
        return (
            statistics.median((d.app / d.events) / (j.app / j.events) - 1 for d, j in pairs) * 100
        )


def emit_round(sink: Sink, batch: list[Fields], queue_size: int) -> Round:
    """Emit *batch* through a fresh pipeline writing to *sink*; abort on any lost event."""
    wideevents.configure("bench", sinks=[sink], queue_size=queue_size)
    event = wideevents.event
    gc.collect()  # the previous round's garbage is not this one's to pay for
    p0 = time.process_time()
    w0 = time.perf_counter()
    t0 = time.thread_time()
    for f in batch:
        with event("op", **f):
            pass
    t1 = time.thread_time()
    w1 = time.perf_counter()
    wideevents.flush()
    w2 = time.perf_counter()
    p1 = time.process_time()
    stats = wideevents.stats()
    errors = {k: v for k, v in stats.items() if k.endswith("errors") and v}
    if stats["dropped"] or stats["sampled_out"] or errors:
        raise InvalidMeasurementError(f"events lost in a round: {stats}")
    if stats["exported"] != len(batch):
        raise InvalidMeasurementError(f"exported {stats['exported']} of {len(batch)}: {stats}")
    return Round(len(batch), t1 - t0, p1 - p0, w1 - w0, w2 - w1)


def measure_app_thread(n: int, round_events: int, tmp: Path, db: Path) -> AppResult:
    """Interleaved rounds through both sinks; DuckDB is never ingested into meanwhile."""
    queue_size = 2 * max(round_events, WARMUP_EVENTS)
    # Warm-up (imports, code paths, page cache) into throwaway files: the store under test
    # must receive exactly N events.
    warm = tmp / "warmup"
    warm.mkdir()
    batch = list(fields(min(WARMUP_EVENTS, n), seed=-1))
    emit_round(JsonLinesSink(warm / "warm.jsonl"), batch, queue_size)
    emit_round(DuckDBSink(warm / "warm.duckdb", ingest_interval=0), batch, queue_size)
    wideevents.shutdown()
    shutil.rmtree(warm)

    sinks: dict[str, Sink] = {
        JSONL: JsonLinesSink(tmp / "events.jsonl"),
        DUCKDB: DuckDBSink(db, ingest_interval=0),
    }
    results = {name: SinkResult(name) for name in sinks}
    sizes = round_sizes(n, round_events)
    for r, size in enumerate(sizes):
        batch = list(fields(size, seed=r))
        order = [JSONL, DUCKDB] if r % 2 == 0 else [DUCKDB, JSONL]
        for name in order:
            results[name].rounds.append(emit_round(sinks[name], batch, queue_size))
        print(f"  app-thread round {r + 1}/{len(sizes)} done", file=sys.stderr, flush=True)
    wideevents.flush()
    wideevents.shutdown()  # seals the DuckDB sink's last segment
    return AppResult(results[JSONL], results[DUCKDB], queue_size, "duckdb" in sys.modules)


# -- the spool ---------------------------------------------------------------------------


@dataclass
class SpoolResult:
    segments: int
    bytes: int
    lines: int
    jsonl_bytes: int
    redacted_lines: int
    copies: list[Path]


def check_spool(n: int, tmp: Path, db: Path) -> SpoolResult:
    """Every event sealed in the spool; hard links to the segments are kept for later reads
    (the ingester deletes the spool's names, not the data)."""
    spool = StorePaths.for_db(db).spool
    still_open = [p.name for p in spool.iterdir() if p.name.endswith(OPEN_SUFFIX)]
    if still_open:
        raise InvalidMeasurementError(f"segments still open after flush: {still_open}")
    sealed = _sealed(spool)
    lines = _count_lines(sealed)
    if lines != n:
        raise InvalidMeasurementError(f"the spool holds {lines} lines, expected {n}")
    keep = tmp / "spooled-copy"
    keep.mkdir()
    copies = []
    for p in sealed:
        copy = keep / p.name
        os.link(p, copy)
        copies.append(copy)
    jsonl = tmp / "events.jsonl"
    redacted = 0
    with open(jsonl, "rb") as f:
        while chunk := f.read(1 << 24):
            redacted += chunk.count(b'"meta.redacted"')
    return SpoolResult(
        segments=len(sealed),
        bytes=sum(p.stat().st_size for p in sealed),
        lines=lines,
        jsonl_bytes=jsonl.stat().st_size,
        redacted_lines=redacted,
        copies=copies,
    )


# -- 2. the ingester ---------------------------------------------------------------------


@dataclass
class IngestRun:
    wall: float
    cpu: float
    peak_rss_kib: int


def run_ingester(db: Path) -> IngestRun:
    """``python -m wideevents.store.ingest --db PATH`` in a child process, as the sink runs it."""
    cpu0, _ = _children_cpu()
    w0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wideevents.store.ingest", "--db", str(db)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - w0
    cpu1, rss = _children_cpu()
    if proc.returncode != 0 or proc.stderr.strip():
        raise InvalidMeasurementError(
            f"the ingester exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
    return IngestRun(wall, cpu1 - cpu0, rss)


@dataclass
class IngestResult:
    startup: IngestRun
    run: IngestRun
    rows: int
    distinct_span_ids: int
    user_columns: dict[str, str]

    def rows_per_cpu_s(self, n: int) -> float:
        return n / self.run.cpu

    def rows_per_wall_s(self, n: int) -> float:
        return n / self.run.wall


def verify_store(n: int, db: Path) -> tuple[int, int, dict[str, str]]:
    """Row count, distinct span ids and the user columns' types, read-only under the lock."""
    from wideevents.store.ingest import connect, table_columns
    from wideevents.store.schema import CORE_COLUMNS, EVENTS

    paths = StorePaths.for_db(db)
    leftovers = [p.name for p in paths.spool.iterdir() if p.name.endswith((SEALED_SUFFIX, ".bad"))]
    if leftovers:
        raise InvalidMeasurementError(f"segments left in the spool after ingest: {leftovers}")
    with paths.lock(exclusive=False, timeout=30):
        con = connect(paths, read_only=True)
        try:
            row = con.execute(f"SELECT count(*), count(DISTINCT span_id) FROM {EVENTS}").fetchone()
            assert row is not None
            rows, distinct = int(row[0]), int(row[1])
            columns = table_columns(con)
        finally:
            con.close()
    if rows != n or distinct != n:
        raise InvalidMeasurementError(
            f"the store holds {rows} rows with {distinct} distinct span ids, expected {n}"
        )
    user = {k: v for k, v in columns.items() if k not in CORE_COLUMNS}
    if len(user) != N_FIELDS:
        raise InvalidMeasurementError(f"{len(user)} user columns, expected {N_FIELDS}: {user}")
    return rows, distinct, user


def measure_ingester(n: int, db: Path, startup: IngestRun) -> IngestResult:
    run = run_ingester(db)
    rows, distinct, user = verify_store(n, db)
    return IngestResult(startup, run, rows, distinct, user)


# -- 4. bytes on disk --------------------------------------------------------------------


@dataclass
class ColumnSize:
    name: str
    type: str
    bytes: int
    segments: int
    compressions: str


@dataclass
class DiskResult:
    db_bytes_before: int
    db_bytes: int
    wal_bytes: int
    block_size: int
    used_blocks: int
    free_blocks: int
    columns: list[ColumnSize]
    isolated: dict[str, int]  # column name: bytes when stored alone, for the top columns
    json_db_bytes: int
    json_load_wall: float
    json_compressions: str

    def per_event(self, n: int) -> float:
        return self.db_bytes / n

    def json_per_event(self, n: int) -> float:
        return self.json_db_bytes / n


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def column_sizes(con: duckdb.DuckDBPyConnection, table: str, block_size: int) -> list[ColumnSize]:
    """Estimated bytes per column from ``pragma_storage_info``.

    A segment's size is not reported, but where it starts is (block id, offset in block):
    a segment is taken to run to the next segment's offset in the same block, the last one in
    a block to the block's end, plus one whole block per entry of ``additional_block_ids``.
    Segments of every table are considered, so a block shared with another table is split
    right; the last segment of a partly used block is overestimated. Validity (NULL mask)
    segments count towards their column.
    """
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    ]
    union = " UNION ALL ".join(
        "SELECT "
        + _literal(t)
        + " AS tbl, column_name, segment_id, compression, block_id, block_offset, "
        "coalesce(len(additional_block_ids), 0) AS extra "
        f"FROM pragma_storage_info({_literal(t)}) WHERE block_id >= 0"
        for t in tables
    )
    rows = con.execute(
        f"""
        WITH seg AS ({union}),
        sized AS (
            SELECT *, coalesce(lead(block_offset) OVER
                       (PARTITION BY block_id ORDER BY block_offset), {block_size})
                   - block_offset + extra * {block_size} AS est
            FROM seg
        ),
        all_columns AS (
            SELECT column_name, count(*) AS segments,
                   string_agg(DISTINCT compression, ',' ORDER BY compression) AS compressions
            FROM pragma_storage_info({_literal(table)}) GROUP BY ALL
        )
        SELECT a.column_name, c.data_type, coalesce(s.bytes, 0), a.segments, a.compressions
        FROM all_columns a
        LEFT JOIN (SELECT column_name, sum(est)::BIGINT AS bytes FROM sized
                   WHERE tbl = {_literal(table)} GROUP BY ALL) s USING (column_name)
        LEFT JOIN (SELECT column_name, data_type FROM duckdb_columns()
                   WHERE database_name = current_database()
                     AND table_name = {_literal(table)}) c USING (column_name)
        ORDER BY 3 DESC, 1
        """
    ).fetchall()
    return [
        ColumnSize(str(c), str(t).replace(" WITH TIME ZONE", "TZ"), int(b), int(s), str(k))
        for c, t, b, s, k in rows
    ]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _database_size(
    con: duckdb.DuckDBPyConnection, database: str | None = None
) -> tuple[int, int, int]:
    """(block size, used blocks, free blocks) of *database* (default: the current one)."""
    where = "current_database()" if database is None else _literal(database)
    row = con.execute(
        "SELECT block_size, used_blocks, free_blocks FROM pragma_database_size() "
        f"WHERE database_name = {where}"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def isolated_sizes(
    con: duckdb.DuckDBPyConnection, table: str, names: list[str], tmp: Path
) -> dict[str, int]:
    """Each column copied alone, in table order, into a DuckDB file of its own: the blocks it
    takes beyond an empty table's (exact to one block; checks the offset-gap estimate)."""
    from wideevents.store.schema import quote_ident

    out: dict[str, int] = {}
    for i, name in enumerate(names):
        path = tmp / f"column-{i}.duckdb"
        con.execute(f"ATTACH {_literal(str(path))} AS iso")
        try:
            column = quote_ident(name)
            con.execute(f"CREATE TABLE iso.empty AS SELECT {column} FROM {table} LIMIT 0")
            con.execute("CHECKPOINT iso")
            block_size, empty, _ = _database_size(con, "iso")
            con.execute(f"CREATE TABLE iso.t AS SELECT {column} FROM {table}")
            con.execute("CHECKPOINT iso")
            _, full, _ = _database_size(con, "iso")
        finally:
            con.execute("DETACH iso")
        for leftover in (path, Path(str(path) + ".wal")):
            leftover.unlink(missing_ok=True)
        out[name] = (full - empty) * block_size
    return out


def load_json_column(files: list[Path], path: Path) -> tuple[int, float, str]:
    """The spooled lines as ONE JSON column in a DuckDB file of their own."""
    import duckdb

    listing = "[" + ", ".join(_literal(str(f)) for f in files) + "]"
    w0 = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE t AS SELECT json "
            f"FROM read_json_objects({listing}, format='newline_delimited')"
        )
        con.execute("CHECKPOINT")
        row = con.execute(
            "SELECT string_agg(DISTINCT compression, ',' ORDER BY compression) "
            "FROM pragma_storage_info('t') WHERE segment_type <> 'VALIDITY'"
        ).fetchone()
        compressions = str(row[0]) if row else "?"
    finally:
        con.close()
    return _file_size(path), time.perf_counter() - w0, compressions


def measure_disk(db: Path, copies: list[Path], tmp: Path) -> DiskResult:
    from wideevents.store.ingest import connect
    from wideevents.store.schema import EVENTS

    paths = StorePaths.for_db(db)
    before = _file_size(db)
    with paths.lock(exclusive=True, timeout=30):
        con = connect(paths)
        try:
            con.execute("CHECKPOINT")
            block_size, used, free = _database_size(con)
            columns = column_sizes(con, EVENTS, block_size)
            top = [c.name for c in columns[:TOP_COLUMNS]]
            isolated = isolated_sizes(con, EVENTS, top, tmp)
        finally:
            con.close()
    json_bytes, json_wall, json_compressions = load_json_column(copies, tmp / "json.duckdb")
    return DiskResult(
        db_bytes_before=before,
        db_bytes=_file_size(db),
        wal_bytes=_file_size(Path(str(db) + ".wal")),
        block_size=block_size,
        used_blocks=used,
        free_blocks=free,
        columns=columns,
        isolated=isolated,
        json_db_bytes=json_bytes,
        json_load_wall=json_wall,
        json_compressions=json_compressions,
    )


# -- 5. where the ingester's time goes ---------------------------------------------------


@dataclass
class Phase:
    name: str
    wall: float
    cpu: float


def _timed(name: str, work: Callable[[], object]) -> Phase:
    p0 = time.process_time()
    w0 = time.perf_counter()
    work()
    return Phase(name, time.perf_counter() - w0, time.process_time() - p0)


def measure_phases(copies: list[Path], user_columns: dict[str, str]) -> list[Phase]:
    """The ingester's two reads of the JSON lines, timed in this process on the same files:
    type detection over every line (``sample_size=-1``), then the typed read of all columns
    (aggregated away here, where the ingester inserts them)."""
    import duckdb

    from wideevents.store.ingest import _file_list
    from wideevents.store.schema import CORE_COLUMNS, quote_literal

    files = _file_list(copies)
    con = duckdb.connect()
    try:
        detect = (
            f"DESCRIBE SELECT * FROM read_ndjson({files}, sample_size=-1, "
            "union_by_name=true, maximum_depth=2)"
        )
        types = {**CORE_COLUMNS, **user_columns}
        present = {r[0] for r in con.execute(detect).fetchall()}
        spec = ", ".join(
            f"{quote_literal(k)}: {quote_literal(v)}" for k, v in types.items() if k in present
        )
        read = (
            "SELECT min(COLUMNS(*)) FROM "
            f"read_ndjson({files}, columns={{{spec}}}, format='newline_delimited')"
        )
        return [
            _timed("detect types (reads every line)", lambda: con.execute(detect).fetchall()),
            _timed("typed read of all columns", lambda: con.execute(read).fetchall()),
        ]
    finally:
        con.close()


# -- reporting ---------------------------------------------------------------------------


def print_app(app: AppResult) -> None:
    head = (
        f"{'sink':<8} {'app-thread us':>13} {'total CPU us':>12} {'spread':>7} "
        f"{'emit s':>8} {'flush s':>8} {'events':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in (app.jsonl, app.duckdb):
        print(
            f"{r.name:<8} {r.app_us():>13.2f} {r.total_us():>12.2f} {r.spread():>6.0f}% "
            f"{r.emit_wall:>8.2f} {r.flush_wall:>8.2f} {r.events:>10,}"
        )
    print(
        f"medians over {len(app.duckdb.rounds)} rounds of CPU us per event; spread: "
        "(max - min) / median of app-thread; emit/flush s: wall time summed over rounds"
    )
    print(
        f"app-thread duckdb/jsonl: {app.overhead_pct:+.1f}% (medians), "
        f"{app.paired_overhead_pct():+.1f}% (median of the per-round ratios); "
        f"total CPU: {app.total_overhead_pct:+.1f}%; queue_size="
        f"{app.queue_size:,}; duckdb imported in the app process: {app.duckdb_imported}"
    )


def print_ingest(n: int, ing: IngestResult, spool: SpoolResult) -> None:
    s, r = ing.startup, ing.run
    print(
        f"spool: {spool.segments} sealed segments, {_mib(spool.bytes)}, "
        f"{spool.bytes / n:.1f} bytes/event ({spool.lines:,} lines); JsonLinesSink file "
        f"{spool.jsonl_bytes / n:.1f} bytes/event; lines with meta.redacted: "
        f"{spool.redacted_lines}"
    )
    print(
        f"ingester fixed cost (empty spool, creates the store): {s.wall:.2f} s wall, "
        f"{s.cpu:.2f} s CPU"
    )
    print(
        f"ingester over {n:,} events: {r.wall:.2f} s wall, {r.cpu:.2f} s CPU "
        f"(CPU/wall {r.cpu / r.wall:.2f}), peak RSS of a child {r.peak_rss_kib / 1024:.0f} MiB; "
        f"without the fixed cost {n / max(r.cpu - s.cpu, 1e-9):,.0f} rows per CPU-second"
    )
    print(
        f"store checked: count(*) = {ing.rows:,}, count(DISTINCT span_id) = "
        f"{ing.distinct_span_ids:,}; user column types: "
        + ", ".join(f"{k} {t}" for t, k in sorted(Counter(ing.user_columns.values()).items()))
    )


def print_phases(n: int, phases: list[Phase], ing: IngestResult) -> None:
    rest = ing.run.cpu - ing.startup.cpu - sum(p.cpu for p in phases)
    for p in phases:
        print(
            f"  {p.name:<34} {p.wall:>7.2f} s wall {p.cpu:>7.2f} s CPU "
            f"({p.cpu / ing.run.cpu * 100:>4.0f}% of the ingester's CPU)"
        )
    print(
        f"  {'fixed cost (empty-spool run)':<34} {ing.startup.wall:>7.2f} s wall "
        f"{ing.startup.cpu:>7.2f} s CPU ({ing.startup.cpu / ing.run.cpu * 100:>4.0f}%)"
    )
    print(
        f"  {'the rest (insert, compress, commit)':<34} {'':>7}   {'':>5} {rest:>7.2f} s CPU "
        f"({rest / ing.run.cpu * 100:>4.0f}%)"
    )


def print_disk(n: int, disk: DiskResult) -> None:
    used = disk.used_blocks * disk.block_size
    estimated = sum(c.bytes for c in disk.columns)
    print(
        f"store file: {_mib(disk.db_bytes_before)} before CHECKPOINT, {_mib(disk.db_bytes)} "
        f"after (WAL {disk.wal_bytes} bytes); {disk.used_blocks} used + {disk.free_blocks} free "
        f"blocks of {disk.block_size // 1024} KiB = {used / n:.1f} bytes/event in used blocks"
    )
    print(
        f"one JSON column: {_mib(disk.json_db_bytes)} ({disk.json_compressions}), "
        f"loaded in {disk.json_load_wall:.1f} s"
    )
    print(
        f"per column (estimated from pragma_storage_info block offsets; sum "
        f"{estimated / n:.1f} bytes/event = {estimated / max(disk.db_bytes, 1) * 100:.0f}% "
        "of the file):"
    )
    head = (
        f"  {'column':<28} {'type':<11} {'bytes/event':>11} {'share':>6} {'alone':>6} "
        f"{'segments':>8}  compression"
    )
    print(head)
    for c in disk.columns:
        alone = disk.isolated.get(c.name)
        print(
            f"  {c.name:<28} {c.type:<11} {c.bytes / n:>11.2f} "
            f"{c.bytes / max(estimated, 1) * 100:>5.1f}% "
            f"{'' if alone is None else f'{alone / n:.2f}':>6} {c.segments:>8}  {c.compressions}"
        )
    print(
        "  (bytes/event: segment start offsets, the last segment of a block counted to the "
        "block's end; alone: the column copied into a file of its own, to one block)"
    )
    top = disk.columns[:TOP_COLUMNS]
    print(
        f"top {len(top)}: "
        + ", ".join(f"{c.name} {c.bytes / n:.1f}" for c in top)
        + f" = {sum(c.bytes for c in top) / n:.1f} bytes/event"
        + f" (alone: {sum(disk.isolated.values()) / n:.1f})"
    )


def targets(n: int, app: AppResult, ing: IngestResult, disk: DiskResult) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    per_cpu, per_wall = ing.rows_per_cpu_s(n), ing.rows_per_wall_s(n)
    ok = per_cpu >= TARGET_ROWS_PER_CPU_S
    print(
        f"ingester: {per_cpu:.0f} rows/s per CPU-second (wall {per_wall:.0f} rows/s) "
        f"(target >= {TARGET_ROWS_PER_CPU_S}) {_verdict(ok)}"
    )
    out.append(
        {
            "figure": "ingester",
            "rows_per_cpu_s": round(per_cpu),
            "rows_per_wall_s": round(per_wall),
            "target": TARGET_ROWS_PER_CPU_S,
            "pass": ok,
        }
    )
    pct = app.overhead_pct
    ok = pct <= TARGET_APP_OVERHEAD_PCT
    print(
        f"app-thread: duckdb sink {app.duckdb.app_us():.2f} us vs jsonl "
        f"{app.jsonl.app_us():.2f} us = {pct:+.1f}% "
        f"(target <= +{TARGET_APP_OVERHEAD_PCT:.0f}%) {_verdict(ok)}"
    )
    out.append(
        {
            "figure": "app-thread",
            "duckdb_us": round(app.duckdb.app_us(), 4),
            "jsonl_us": round(app.jsonl.app_us(), 4),
            "overhead_pct": round(pct, 2),
            "paired_overhead_pct": round(app.paired_overhead_pct(), 2),
            "target": TARGET_APP_OVERHEAD_PCT,
            "pass": ok,
        }
    )
    per_event, json_per_event = disk.per_event(n), disk.json_per_event(n)
    ok = per_event <= TARGET_BYTES_PER_EVENT
    print(
        f"disk: {per_event:.1f} bytes/event after checkpoint "
        f"(target <= {TARGET_BYTES_PER_EVENT:.0f}); one JSON column: "
        f"{json_per_event:.1f} bytes/event = {json_per_event / per_event:.2f}x {_verdict(ok)}"
    )
    bits = information_bits()
    floor = sum(bits.values()) / 8
    ids = (bits["request.id"] + bits["trace_id"] + bits["span_id"]) / 8
    print(
        f"  the data's information content: {floor:.1f} bytes/event before timestamps "
        f"({ids:.1f} of it in three random ids, {bits['db.time_ms'] / 8:.1f} in one "
        f"full-precision double): the least any lossless layout stores; this one takes "
        f"{per_event / floor:.2f}x"
    )
    out.append(
        {
            "figure": "disk",
            "bytes_per_event": round(per_event, 2),
            "information_bytes_per_event": round(floor, 2),
            "json_column_bytes_per_event": round(json_per_event, 2),
            "target": TARGET_BYTES_PER_EVENT,
            "pass": ok,
        }
    )
    return out


# -- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, help=f"events (default {DEFAULT_EVENTS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events")
    parser.add_argument(
        "--round", type=int, default=ROUND_EVENTS, help="events per app-thread round"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("--tmpdir", help="where to make the temporary directory")
    args = parser.parse_args(argv)
    n = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    sample = next(fields(1, seed=0))
    assert len(sample) == N_FIELDS, sorted(sample)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(f"wideevents {_version('wideevents')}, duckdb {_version('duckdb')}")
    sizes = round_sizes(n, args.round)
    print(
        f"{n:,} events of {N_FIELDS} user fields, app-thread in {len(sizes)} rounds of "
        f"{args.round:,} per sink (after a warm-up of {min(WARMUP_EVENTS, n):,})"
    )

    with tempfile.TemporaryDirectory(prefix="wideevents-bench-ingest-", dir=args.tmpdir) as d:
        tmp = Path(d)
        db = tmp / "store.duckdb"
        try:
            startup = run_ingester(db)  # creates the store: its fixed cost, for reference
            t0 = time.perf_counter()
            app = measure_app_thread(n, args.round, tmp, db)
            print(f"  app-thread done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            spool = check_spool(n, tmp, db)
            ing = measure_ingester(n, db, startup)
            print(f"  ingest done in {ing.run.wall:.0f} s", file=sys.stderr, flush=True)
            disk = measure_disk(db, spool.copies, tmp)
            print("  disk done", file=sys.stderr, flush=True)
            phases = measure_phases(spool.copies, ing.user_columns)
        except InvalidMeasurementError as exc:
            print(f"aborted, the measurement is invalid: {exc}", file=sys.stderr)
            return 2

    e2e_s = app.duckdb.emit_wall + app.duckdb.flush_wall + ing.run.wall
    print()
    print_app(app)
    print()
    print_ingest(n, ing, spool)
    print("where the ingester's CPU goes (its two reads re-run in this process, same files):")
    print_phases(n, phases, ing)
    print()
    print(
        f"end to end: {n / e2e_s:,.0f} events/s (emit {app.duckdb.emit_wall:.2f} s + flush "
        f"{app.duckdb.flush_wall:.2f} s + ingest {ing.run.wall:.2f} s for {n:,} events)"
    )
    print()
    print_disk(n, disk)
    print()
    verdicts = targets(n, app, ing, disk)

    if args.json:
        print(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "duckdb": _version("duckdb"),
                    "n": n,
                    "fields": N_FIELDS,
                    "round": args.round,
                    "app": {
                        r.name: {
                            "app_us": round(r.app_us(), 4),
                            "total_us": round(r.total_us(), 4),
                            "app_us_rounds": [round(_us(x.app, x.events), 4) for x in r.rounds],
                            "total_us_rounds": [round(_us(x.total, x.events), 4) for x in r.rounds],
                            "emit_wall_s": round(r.emit_wall, 4),
                            "flush_wall_s": round(r.flush_wall, 4),
                        }
                        for r in (app.jsonl, app.duckdb)
                    },
                    "spool": {
                        "segments": spool.segments,
                        "bytes_per_event": round(spool.bytes / n, 2),
                        "jsonl_bytes_per_event": round(spool.jsonl_bytes / n, 2),
                    },
                    "ingest": {
                        "startup": asdict(ing.startup),
                        "run": asdict(ing.run),
                        "rows_per_cpu_s": round(ing.rows_per_cpu_s(n)),
                        "rows_per_wall_s": round(ing.rows_per_wall_s(n)),
                        "phases": [asdict(p) for p in phases],
                    },
                    "end_to_end_events_per_s": round(n / e2e_s),
                    "disk": {
                        "bytes_per_event": round(disk.per_event(n), 2),
                        "json_column_bytes_per_event": round(disk.json_per_event(n), 2),
                        "used_blocks": disk.used_blocks,
                        "free_blocks": disk.free_blocks,
                        "block_size": disk.block_size,
                        "columns": {
                            c.name: {
                                "type": c.type,
                                "bytes_per_event": round(c.bytes / n, 3),
                                "alone_bytes_per_event": (
                                    round(disk.isolated[c.name] / n, 3)
                                    if c.name in disk.isolated
                                    else None
                                ),
                                "segments": c.segments,
                                "compression": c.compressions,
                            }
                            for c in disk.columns
                        },
                    },
                    "targets": verdicts,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
