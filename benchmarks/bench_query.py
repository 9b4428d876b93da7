"""Query speed over a large store: wideevents vs one JSON column vs chdb, in one run.

N events (default 10,000,000) of 25 user fields of a web request are generated straight into
a store with DuckDB SQL (not through the SDK, far too slow for 10M): ``ensure_tables`` makes
the core columns, ``ALTER TABLE … ADD COLUMN`` the typed user columns the ingester would add,
and one ``INSERT … SELECT … FROM range(N)`` fills them from hashes of the row number, so the
data is the same on every run. An incident is planted: one bad build (``service.version``)
on 2 of the 20 hosts serves ~2% of the requests, each 0.9-3 s slower, so the events at or
above the p99 of ``duration_ms`` are nearly all that build. The same rows are then written as
ONE JSON attributes column (core columns typed) in a second DuckDB file, and as Parquet for
chdb. Then, medians over rounds (after a warm-up round), contenders interleaved:

* q1: ``count, p99(duration_ms)`` by ``http.route`` where ``http.response.status_code >= 500``:
  ``Store.query`` (the store opened once, outside the timing), hand-written SQL with ``->>``
  on the JSON column, chdb ``quantileExact`` on the Parquet file;
* q2: the top 10 ``user.id`` by count, the same three ways;
* q3: ``breakdown()`` of ``duration_ms >= p99`` against the rest over every field, vs the
  naive way on the same store: one ``GROUP BY`` per field (numeric fields with many values
  binned on the baseline's deciles, one query each for the deciles, as breakdown does; ids
  left out, as breakdown demotes them), checking that the planted field ranks first;
* cli: whole ``wideevents query`` / ``wideevents breakdown`` processes, start to output.

Then where the time goes: each SQL statement the query API ran, timed on its own, the same
questions as plain SQL, breakdown's two statements edited (without the exact deciles, on a
sample, ...: what a change would save), and the phases of a CLI process (interpreter,
imports, lock, connect, ingest, schema, query, close).

    .venv/bin/python benchmarks/bench_query.py                   # 10,000,000 events
    .venv/bin/python benchmarks/bench_query.py --quick           # 1,000,000 events
    .venv/bin/python benchmarks/bench_query.py --keep /tmp/bq    # reuse the generated data
    .venv/bin/python benchmarks/bench_query.py --events 3000000 --json
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from wideevents.query import Query, Store, TimeRange, breakdown, parse_calc, parse_filter
from wideevents.query.breakdown import DECILES, FEW_VALUES, NEAR_UNIQUE, SKIP
from wideevents.store.ingest import connect, ensure_tables, table_columns
from wideevents.store.paths import StorePaths
from wideevents.store.schema import CORE_COLUMNS, EVENTS, quote_ident, quote_literal

DEFAULT_EVENTS = 10_000_000
QUICK_EVENTS = 1_000_000
RUNS = 5
GENERATOR_VERSION = 2  # bump when the data changes: --keep regenerates
GEN_MEMORY_LIMIT = "4GB"  # for the connections this benchmark makes (not the store's queries)

TARGET_Q1_S = 0.1
TARGET_Q2_S = 0.5
TARGET_VS_CHDB = 0.5
TARGET_Q3_S = 1.5
TARGET_VS_NAIVE = 0.5
TARGET_CLI_S = 1.0

BAD_BUILD = "2026.11.3"
BAD_HOSTS = (6, 12)  # host_ix: web-07 and web-13
BAD_SHARE_ON_HOST = 0.2  # of those hosts' requests: 2 of 20 hosts x 0.2 = 2% of all
PLANTED_FIELD = "service.version"
N_HOSTS = 20

# (method, route, share of requests, median duration in ms)
ROUTES: list[tuple[str, str, float, float]] = [
    ("GET", "/api/v1/products", 0.22, 35.0),
    ("GET", "/api/v1/products/{id}", 0.18, 20.0),
    ("GET", "/api/v1/search", 0.12, 80.0),
    ("GET", "/api/v1/cart", 0.10, 25.0),
    ("POST", "/api/v1/cart/items", 0.08, 40.0),
    ("GET", "/api/v1/users/{id}", 0.07, 15.0),
    ("POST", "/api/v1/checkout", 0.05, 180.0),
    ("GET", "/api/v1/orders", 0.05, 60.0),
    ("GET", "/api/v1/orders/{id}", 0.04, 30.0),
    ("POST", "/api/v1/login", 0.04, 90.0),
    ("GET", "/healthz", 0.03, 1.0),
    ("GET", "/api/v1/recommendations", 0.02, 120.0),
]
CHECKOUT = 6
CART_ROUTES = (3, 4, 6)

Q1_CALCS = ("count", "p99(duration_ms)")
Q1_WHERE = "http.response.status_code >= 500"
Q1_GROUP = "http.route"
Q2_GROUP = "user.id"


class InvalidMeasurementError(Exception):
    """A contender gave a wrong answer, or a process failed: the figures mean nothing."""


# -- the data ----------------------------------------------------------------------------


def _u(k: int) -> str:
    """SQL for a uniform number in (0, 1), fixed per row ``i`` and salt *k* (0 … 63).

    Not ``hash(i, k)``: DuckDB combines the hashes of several arguments so that the results
    for two salts are ~99% correlated. ``hash(i * 64 + k)`` hashes one distinct value."""
    return f"(((hash(i * 64 + {k}) >> 11) + 0.5) / 9007199254740992.0)"


def _lit(value: str | float | bool) -> str:
    if isinstance(value, str):
        return quote_literal(value)
    return repr(value).lower() if isinstance(value, bool) else repr(value)


def _pick(u: str, choices: Sequence[tuple[str | float | bool, float]]) -> str:
    """SQL that is ``choices[k][0]`` with probability proportional to ``choices[k][1]``."""
    total = sum(w for _, w in choices)
    acc = 0.0
    whens = []
    for value, weight in choices[:-1]:
        acc += weight / total
        whens.append(f"WHEN {u} < {acc!r} THEN {_lit(value)}")
    return f"CASE {' '.join(whens)} ELSE {_lit(choices[-1][0])} END"


def _list(values: Sequence[str | float]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def _route_sql(part: int) -> str:
    return f"({_list([r[part] for r in ROUTES])})[route_ix + 1]"


COUNTRIES: list[tuple[str | float | bool, float]] = [("US", 30), ("DE", 15), ("FR", 10)]
COUNTRIES += [("GB", 10), ("BR", 10), ("JP", 10), ("IN", 10), ("AU", 5)]
GOOD_BUILDS = [("2026.11.2", 70), ("2026.11.1", 20), ("2026.10.7", 7), ("2026.10.6", 3)]
STATUS_GOOD = [(200, 93.4), (201, 1.5), (204, 1.0), (400, 1.2), (401, 0.8), (404, 1.2)]
STATUS_GOOD += [(429, 0.5), (500, 0.2), (502, 0.1), (503, 0.1)]
STATUS_BAD = [(200, 88.0), (201, 1.5), (204, 1.0), (400, 1.2), (401, 0.8), (404, 1.2)]
STATUS_BAD += [(429, 0.3), (500, 3.0), (502, 1.0), (503, 2.0)]

# The 25 user fields: name -> (store type, SQL over the helper columns of ``generate_sql``).
USER_FIELDS: dict[str, tuple[str, str]] = {
    "http.route": ("VARCHAR", _route_sql(1)),
    "http.request.method": ("VARCHAR", _route_sql(0)),
    "http.response.status_code": ("BIGINT", "status"),
    "user.id": (
        "BIGINT",
        f"CASE WHEN {_u(20)} < 0.5 THEN 1 + floor({_u(21)} * 100000) "
        f"ELSE floor(exp({_u(22)} * ln(100000))) END::BIGINT",
    ),
    "user.tier": ("VARCHAR", _pick(_u(23), [("free", 70), ("pro", 25), ("enterprise", 5)])),
    "user.country": (
        "VARCHAR",
        _pick(
            _u(24),
            COUNTRIES,
        ),
    ),
    "cloud.region": (
        "VARCHAR",
        "CASE WHEN host_ix < 10 THEN 'eu-west-1' WHEN host_ix < 15 THEN 'us-east-1' "
        "ELSE 'ap-southeast-2' END",
    ),
    "k8s.pod.name": (
        "VARCHAR",
        "printf('shop-api-%02d-%s', host_ix + 1, "
        "(['a', 'b', 'c'])[(1 + hash(i * 64 + 25) % 3)::INTEGER])",
    ),
    "flag.new_checkout": ("BOOLEAN", f"{_u(26)} < 0.5"),
    "flag.dark_mode": ("BOOLEAN", f"{_u(27)} < 0.2"),
    "flag.search_v2": ("BOOLEAN", f"{_u(28)} < 0.1"),
    "feature.experiment": (
        "VARCHAR",
        _pick(_u(29), [("control", 50), ("variant_a", 25), ("variant_b", 25)]),
    ),
    "db.calls": ("BIGINT", "db_calls"),
    "db.time_ms": ("DOUBLE", "db_time"),
    "cache.hit": ("BOOLEAN", f"{_u(30)} < 0.8"),
    "request.id": (
        "VARCHAR",
        "substr(h1, 1, 8) || '-' || substr(h1, 9, 4) || '-4' || substr(h1, 14, 3) || '-' "
        "|| substr(h2, 1, 4) || '-' || substr(h2, 5, 12)",
    ),
    "http.user_agent.family": (
        "VARCHAR",
        _pick(
            _u(31),
            [("Chrome", 45), ("Safari", 25), ("Firefox", 10), ("okhttp", 12), ("curl", 8)],
        ),
    ),
    "response.bytes": ("BIGINT", f"(200 + floor({_u(32)} * 49800))::BIGINT"),
    "request.bytes": ("BIGINT", f"(100 + floor({_u(33)} * 3900))::BIGINT"),
    "upstream.time_ms": ("DOUBLE", f"round(2 + 60 * {_u(34)} * {_u(34)}, 3)"),
    "queue.wait_ms": ("DOUBLE", f"round(-ln({_u(35)}) * 2, 3)"),
    "retry.count": ("BIGINT", _pick(_u(36), [(0, 95), (1, 4), (2, 1)]) + "::BIGINT"),
    "payment.provider": (
        "VARCHAR",
        f"CASE WHEN route_ix = {CHECKOUT} THEN "
        f"{_pick(_u(37), [('stripe', 60), ('adyen', 30), ('paypal', 10)])} END",
    ),
    "cart.items": (
        "BIGINT",
        f"CASE WHEN route_ix IN {CART_ROUTES} THEN (1 + floor({_u(38)} * 11))::BIGINT END",
    ),
    "cart.total": (
        "DOUBLE",
        f"CASE WHEN route_ix IN {CART_ROUTES} THEN round(5 + 895 * {_u(39)}, 2) END",
    ),
}

# Core columns: name -> SQL (the ones left out stay NULL, as in a store of root spans).
CORE_SQL: dict[str, str] = {
    "timestamp": (
        "start_ts + to_microseconds((i * span_us / n)::BIGINT "
        "+ (hash(i * 64 + 40) % 1000000)::BIGINT)"
    ),
    "duration_ms": (
        f"round({_route_sql(3)} * exp(0.6 * z) + db_time "
        f"+ CASE WHEN bad THEN 900 + 2100 * {_u(41)} ELSE 0 END, 3)"
    ),
    "name": f"{_route_sql(0)} || ' ' || {_route_sql(1)}",
    "trace_id": "h1 || h2",
    "span_id": "lower(lpad(to_hex(hash(i * 64 + 44)), 16, '0'))",
    "error": "status >= 500",
    "error.type": (
        "CASE status WHEN 500 THEN 'InternalServerError' WHEN 502 THEN 'BadGateway' "
        "WHEN 503 THEN 'UpstreamTimeout' END"
    ),
    "error.message": (
        "CASE status WHEN 500 THEN 'unhandled exception in handler' "
        "WHEN 502 THEN 'inventory service returned 502' "
        "WHEN 503 THEN 'upstream timed out after 2000 ms' END"
    ),
    "sample_rate": "1::BIGINT",
    "service.name": "'shop-api'",
    "service.version": (
        f"CASE WHEN bad THEN {_lit(BAD_BUILD)} ELSE {_pick(_u(45), GOOD_BUILDS)} END"
    ),
    "deployment.environment.name": "'production'",
    "host.name": "printf('web-%02d', host_ix + 1)",
    "process.pid": "(4000 + host_ix * 17)::BIGINT",
}


def generate_sql(n: int) -> str:
    """``INSERT INTO events`` of *n* rows; parameters: the first timestamp, the span in µs."""
    route_ix = _pick(_u(3), [(float(k), r[2]) for k, r in enumerate(ROUTES)]) + "::INTEGER"
    bad = f"host_ix IN {BAD_HOSTS} AND u_build < {BAD_SHARE_ON_HOST!r}"
    status = (
        f"CASE WHEN bad THEN {_pick('u_status', STATUS_BAD)} "
        f"ELSE {_pick('u_status', STATUS_GOOD)} END::BIGINT"
    )
    columns = {**CORE_SQL, **{name: expr for name, (_, expr) in USER_FIELDS.items()}}
    select = ",\n  ".join(f"{expr} AS {quote_ident(name)}" for name, expr in columns.items())
    return f"""
INSERT INTO {EVENTS} BY NAME
WITH b AS (
  SELECT i, {n}::BIGINT AS n, ?::TIMESTAMPTZ AS start_ts, ?::BIGINT AS span_us,
    (hash(i * 64 + 1) % {N_HOSTS})::INTEGER AS host_ix,
    {_u(2)} AS u_build,
    {route_ix} AS route_ix,
    sqrt(-2 * ln({_u(4)})) * cos(2 * pi() * {_u(5)}) AS z,
    {_u(6)} AS u_status,
    (1 + hash(i * 64 + 8) % 8)::BIGINT AS db_calls,
    {_u(9)} AS u_db,
    lower(lpad(to_hex(hash(i * 64 + 42)), 16, '0')) AS h1,
    lower(lpad(to_hex(hash(i * 64 + 43)), 16, '0')) AS h2
  FROM range({n}) r(i)
), c AS (
  SELECT *, {bad} AS bad, round(db_calls * (0.4 + 3.6 * u_db), 3) AS db_time FROM b
), d AS (
  SELECT *, {status} AS status FROM c
)
SELECT
  {select}
FROM d
"""


@dataclass
class Dataset:
    dir: Path
    n: int
    db: Path
    json_db: Path
    parquet: Path
    p99: float
    bad_share: float
    generated: bool
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall seconds
    sizes: dict[str, int] = field(default_factory=dict)  # file -> bytes

    @property
    def select(self) -> str:
        return f"duration_ms >= {self.p99!r}"


def _meta_path(d: Path) -> Path:
    return d / "dataset.json"


def _load_kept(d: Path, n: int) -> Dataset | None:
    try:
        meta = json.loads(_meta_path(d).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if meta.get("version") != GENERATOR_VERSION or meta.get("n") != n:
        return None
    ds = Dataset(
        dir=d,
        n=n,
        db=d / "store.duckdb",
        json_db=d / "json.duckdb",
        parquet=d / "events.parquet",
        p99=float(meta["p99"]),
        bad_share=float(meta["bad_share"]),
        generated=False,
        seconds=meta["seconds"],
    )
    if not all(p.exists() for p in (ds.db, ds.json_db, ds.parquet)):
        return None
    return ds


def generate_store(db: Path, n: int) -> tuple[float, float]:
    """The typed store, under its lock, through its own ``connect()``: (p99, bad share)."""
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=True, timeout=30):
        con = connect(paths)  # creates the file (and the spool folder) as the ingester would
        try:
            con.execute(f"SET memory_limit = '{GEN_MEMORY_LIMIT}'")
            ensure_tables(con)
            for name, (typ, _) in USER_FIELDS.items():
                con.execute(f"ALTER TABLE {EVENTS} ADD COLUMN {quote_ident(name)} {typ}")
            now = datetime.now(timezone.utc).replace(microsecond=0)
            span_us = 24 * 3600 * 1_000_000 - 2_000_000
            start = now.timestamp() - 24 * 3600
            con.execute(generate_sql(n), [datetime.fromtimestamp(start, timezone.utc), span_us])
            con.execute("CHECKPOINT")
            row = con.execute(
                f"SELECT count(*), quantile_disc(duration_ms, 0.99), "
                f"avg(({quote_ident(PLANTED_FIELD)} = ?)::INTEGER) FROM {EVENTS}",
                [BAD_BUILD],
            ).fetchone()
            assert row is not None
            if int(row[0]) != n:
                raise InvalidMeasurementError(f"generated {row[0]} rows, expected {n}")
            return float(row[1]), float(row[2])
        finally:
            con.close()


def json_column_sql(source: str) -> str:
    """Core columns typed, every user field in ONE JSON column ``attributes``."""
    core = ", ".join(quote_ident(c) for c in CORE_COLUMNS)
    pairs = ", ".join(f"{quote_literal(k)}, {quote_ident(k)}" for k in USER_FIELDS)
    return f"SELECT {core}, json_object({pairs}) AS attributes FROM {source}"


def generate_copies(ds: Dataset) -> None:
    """The JSON-column DuckDB file and the Parquet file, read from the typed store (attached
    read-only under the store's shared lock)."""
    paths = StorePaths.for_db(ds.db)
    with paths.lock(exclusive=False, timeout=30):
        con = duckdb.connect(str(ds.json_db))
        try:
            con.execute(f"SET memory_limit = '{GEN_MEMORY_LIMIT}'")
            con.execute(f"ATTACH {quote_literal(str(ds.db))} AS store (READ_ONLY)")
            t0 = time.perf_counter()
            con.execute(f"CREATE TABLE {EVENTS} AS {json_column_sql(f'store.{EVENTS}')}")
            con.execute("CHECKPOINT")
            ds.seconds["json column file"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            con.execute(
                f"COPY store.{EVENTS} TO {quote_literal(str(ds.parquet))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            ds.seconds["parquet file"] = time.perf_counter() - t0
            con.execute("DETACH store")
        finally:
            con.close()


def prepare(n: int, keep: Path | None, tmp: Path) -> Dataset:
    """The three copies of the data: reused from *keep* when complete, else generated."""
    d = (keep / f"events-{n}") if keep is not None else tmp / "data"
    if keep is not None:
        kept = _load_kept(d, n)
        if kept is not None:
            kept.sizes = _sizes(kept)
            return kept
        if d.exists():
            shutil.rmtree(d)
    d.mkdir(parents=True)
    ds = Dataset(
        dir=d,
        n=n,
        db=d / "store.duckdb",
        json_db=d / "json.duckdb",
        parquet=d / "events.parquet",
        p99=0.0,
        bad_share=0.0,
        generated=True,
    )
    print(f"  generating {n:,} events in {d} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    ds.p99, ds.bad_share = generate_store(ds.db, n)
    ds.seconds["typed store"] = time.perf_counter() - t0
    print(f"  typed store in {ds.seconds['typed store']:.0f} s", file=sys.stderr, flush=True)
    generate_copies(ds)
    print(
        f"  json column in {ds.seconds['json column file']:.0f} s, "
        f"parquet in {ds.seconds['parquet file']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    meta = {
        "version": GENERATOR_VERSION,
        "n": n,
        "p99": ds.p99,
        "bad_share": ds.bad_share,
        "seconds": ds.seconds,
    }
    _meta_path(d).write_text(json.dumps(meta))  # written last: marks the data complete
    ds.sizes = _sizes(ds)
    return ds


def _sizes(ds: Dataset) -> dict[str, int]:
    return {
        "typed store": ds.db.stat().st_size,
        "json column file": ds.json_db.stat().st_size,
        "parquet file": ds.parquet.stat().st_size,
    }


def check_schema(ds: Dataset, store: Store) -> dict[str, str]:
    """The store's columns are the core ones plus the 25 typed user fields, nothing else."""
    columns = dict(store.schema.columns)
    expected = {**CORE_COLUMNS, **{k: t for k, (t, _) in USER_FIELDS.items()}}
    if columns != expected:
        raise InvalidMeasurementError(f"store columns {columns} != expected {expected}")
    assert store.con is not None
    if table_columns(store.con) != expected:
        raise InvalidMeasurementError("table_columns() disagrees with the Store's schema")
    return columns


def profile(store: Store) -> str:
    """A one-line sanity check of the generated data (outside any timing)."""
    assert store.con is not None
    row = store.con.execute(
        'SELECT count(DISTINCT "http.route"), count(DISTINCT "host.name"), '
        'count(DISTINCT "service.version"), approx_count_distinct("user.id"), '
        'avg(("http.response.status_code" >= 500)::INTEGER), '
        'count(DISTINCT "http.route") FILTER (WHERE "http.response.status_code" >= 500), '
        'approx_count_distinct("request.id"), min(timestamp), max(timestamp), '
        f"quantile_disc(duration_ms, [0.5, 0.9, 0.99, 0.999]) FROM {EVENTS}"
    ).fetchone()
    assert row is not None
    routes, hosts, builds, users, err, err_routes, ids, t0, t1, pct = row
    top = store.con.execute(
        f'SELECT sum(n) FROM (SELECT count(*) AS n FROM {EVENTS} GROUP BY "user.id" '
        "ORDER BY n DESC LIMIT 10)"
    ).fetchone()
    n = store.con.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()
    assert top is not None and n is not None
    return (
        f"data: {routes} routes ({err_routes} with 5xx), {hosts} hosts, {builds} builds, "
        f"~{users:,} users (top 10: {top[0] / n[0] * 100:.1f}% of events), "
        f"5xx {err * 100:.2f}%, ~{ids:,} request ids, {t0:%m-%d %H:%M} .. {t1:%m-%d %H:%M}, "
        f"duration_ms p50/p90/p99/p999 " + "/".join(f"{x:.0f}" for x in pct)
    )


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Timed:
    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else math.nan


def _cpu() -> float:
    """CPU seconds of this process (every thread) plus its waited-for child processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ru.ru_utime + ru.ru_stime


def _clock(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s, result); CPU counts this process's threads and its children."""
    c0 = _cpu()
    t0 = time.perf_counter()
    result = work()
    return time.perf_counter() - t0, _cpu() - c0, result


def interleave(
    contenders: dict[str, Callable[[], Any]], runs: int, label: str
) -> tuple[dict[str, Timed], dict[str, Any]]:
    """One warm-up round and *runs* timed rounds, the starting contender rotating.

    Returns the timings and each contender's answer from the warm-up round (for checking)."""
    names = list(contenders)
    timings = {name: Timed(name) for name in names}
    answers: dict[str, Any] = {}
    for r in range(runs + 1):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            wall, cpu, result = _clock(contenders[name])
            if r == 0:
                answers[name] = result
            else:
                timings[name].wall.append(wall)
                timings[name].cpu.append(cpu)
        done = "warm-up" if r == 0 else f"round {r}/{runs}"
        print(f"  {label}: {done}", file=sys.stderr, flush=True)
    return timings, answers


def _sql_label(sql: str, width: int = 60) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class Step:
    """One statement the query API ran, or a diagnostic query, timed on its own."""

    name: str
    median: float
    sql: str = ""


def time_statements(
    con: duckdb.DuckDBPyConnection, statements: list[tuple[str, str, list[Any]]], runs: int
) -> list[Step]:
    """Each (name, sql, params) run on its own: one warm-up, median of *runs*."""
    out = []
    for name, sql, params in statements:
        con.execute(sql, params).fetchall()
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            con.execute(sql, params).fetchall()
            walls.append(time.perf_counter() - t0)
        out.append(Step(name, statistics.median(walls), sql))
    return out


Statement = tuple[str, list[Any]]  # SQL and its parameters


def capture(store: Store, work: Callable[[], Any]) -> list[Statement]:
    """The statements *work* runs through ``Store._rows``, with their parameters."""
    captured: list[Statement] = []
    real = store._rows

    def record(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        captured.append((sql, list(params)))
        return real(sql, params)

    store._rows = record  # type: ignore[method-assign]
    try:
        work()
    finally:
        del store._rows
    return captured


def traced_steps(
    store: Store, captured: list[Statement], names: list[str], runs: int
) -> list[Step]:
    """Each captured statement timed on its own, with the same parameters."""
    if len(captured) != len(names):  # the API changed: number the statements instead
        names = [f"statement {i + 1}" for i in range(len(captured))]
    assert store.con is not None
    return time_statements(
        store.con, [(n, sql, p) for n, (sql, p) in zip(names, captured, strict=True)], runs
    )


def median_call(work: Callable[[], Any], runs: int) -> float:
    work()
    return statistics.median(_clock(work)[0] for _ in range(runs))


# -- chdb --------------------------------------------------------------------------------


def load_chdb() -> tuple[Any, str | None]:
    try:
        import chdb
    except Exception as exc:  # not installed, or a broken wheel
        return None, f"{type(exc).__name__}: {exc}"
    return chdb, None


def chdb_rows(chdb: Any, sql: str) -> list[list[str]]:
    res = chdb.query(sql, "CSV")
    return [row for row in csv.reader(io.StringIO(res.data())) if row]


def _ch_file(path: Path) -> str:
    return "file('" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "', Parquet)"


def _ch_ident(name: str) -> str:
    return "`" + name.replace("`", "\\`") + "`"


# -- q1 / q2: three ways -----------------------------------------------------------------


def q1_query() -> Query:
    return Query(
        calcs=[parse_calc(c) for c in Q1_CALCS],
        filters=[parse_filter(Q1_WHERE)],
        group_by=[Q1_GROUP],
    )


def q2_query() -> Query:
    return Query(calcs=[parse_calc("count")], group_by=[Q2_GROUP], limit=10)


def _json_path(name: str) -> str:
    return quote_literal('$."' + name + '"')


Q1_JSON_SQL = (
    f"SELECT attributes->>{_json_path('http.route')} AS route, count(*) AS n, "
    "quantile_disc(duration_ms, 0.99) AS p99 "
    f"FROM {EVENTS} "
    f"WHERE (attributes->>{_json_path('http.response.status_code')})::BIGINT >= 500 "
    "GROUP BY 1 ORDER BY 2 DESC LIMIT 100"
)
Q2_JSON_SQL = (
    f"SELECT (attributes->>{_json_path('user.id')})::BIGINT AS uid, count(*) AS n "
    f"FROM {EVENTS} GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
)
Q1_PLAIN_SQL = (
    f"SELECT {quote_ident(Q1_GROUP)}, count(*), quantile_disc(duration_ms, 0.99) FROM {EVENTS} "
    'WHERE "http.response.status_code" >= 500 GROUP BY 1 ORDER BY 2 DESC LIMIT 100'
)
Q2_PLAIN_SQL = (
    f"SELECT {quote_ident(Q2_GROUP)}, count(*) FROM {EVENTS} GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
)


def q1_chdb_sql(parquet: Path) -> str:
    return (
        f"SELECT {_ch_ident(Q1_GROUP)}, count() AS n, quantileExact(0.99)(duration_ms) "
        f"FROM {_ch_file(parquet)} WHERE {_ch_ident('http.response.status_code')} >= 500 "
        f"GROUP BY {_ch_ident(Q1_GROUP)} ORDER BY n DESC LIMIT 100"
    )


def q2_chdb_sql(parquet: Path) -> str:
    return (
        f"SELECT {_ch_ident(Q2_GROUP)}, count() AS n FROM {_ch_file(parquet)} "
        f"GROUP BY {_ch_ident(Q2_GROUP)} ORDER BY n DESC LIMIT 10"
    )


# Answers normalised for comparison: q1 route -> (count, p99); q2 the counts, largest first.
Q1Answer = dict[str, tuple[int, float]]


def _check_q1(answers: dict[str, Q1Answer]) -> list[str]:
    """Counts must be equal; p99 may differ by a rank (quantile definitions), flagged if > 1%."""
    notes = []
    reference = answers["wideevents"]
    if not reference:
        raise InvalidMeasurementError("q1: wideevents returned no rows")
    for name, got in answers.items():
        counts = {k: v[0] for k, v in got.items()}
        if counts != {k: v[0] for k, v in reference.items()}:
            raise InvalidMeasurementError(f"q1: {name} counts {counts} != wideevents")
        for route, (_, p99) in got.items():
            ref = reference[route][1]
            if abs(p99 - ref) > 0.01 * abs(ref):
                notes.append(f"q1: {name} p99 of {route} is {p99} vs wideevents {ref}")
    return notes


def _check_q2(answers: dict[str, list[tuple[int, int]]]) -> list[str]:
    reference = answers["wideevents"]
    if len(reference) != 10:
        raise InvalidMeasurementError(f"q2: wideevents returned {len(reference)} rows")
    notes = []
    for name, got in answers.items():
        if [c for _, c in got] != [c for _, c in reference]:
            raise InvalidMeasurementError(f"q2: {name} counts {got} != wideevents {reference}")
        if {u for u, _ in got} != {u for u, _ in reference}:
            notes.append(f"q2: {name} picks other user ids among ties: {got}")
    return notes


@dataclass
class QResult:
    timings: dict[str, Timed]
    answer: Any
    notes: list[str]
    steps: list[Step]


def measure_q1(
    store: Store, jcon: duckdb.DuckDBPyConnection, chdb: Any, ds: Dataset, runs: int
) -> QResult:
    q = q1_query()
    ch_sql = q1_chdb_sql(ds.parquet)

    def we() -> Q1Answer:
        return {
            r[Q1_GROUP]: (int(r["count"]), float(r["p99(duration_ms)"])) for r in store.query(q)
        }

    def js() -> Q1Answer:
        return {str(r): (int(n), float(p)) for r, n, p in jcon.execute(Q1_JSON_SQL).fetchall()}

    def ch() -> Q1Answer:
        return {r: (int(n), float(p)) for r, n, p in chdb_rows(chdb, ch_sql)}

    contenders: dict[str, Callable[[], Any]] = {"wideevents": we, "json column": js}
    if chdb is not None:
        contenders["chdb"] = ch
    timings, answers = interleave(contenders, runs, "q1")
    notes = _check_q1(answers)
    captured = capture(store, lambda: store.query(q))
    steps = traced_steps(store, captured, ["weighted()", "compiled query"], runs)
    assert store.con is not None
    steps += time_statements(store.con, [("same question, plain SQL", Q1_PLAIN_SQL, [])], runs)
    return QResult(timings, answers["wideevents"], notes, steps)


def measure_q2(
    store: Store, jcon: duckdb.DuckDBPyConnection, chdb: Any, ds: Dataset, runs: int
) -> QResult:
    q = q2_query()
    ch_sql = q2_chdb_sql(ds.parquet)

    def we() -> list[tuple[int, int]]:
        return [(int(r[Q2_GROUP]), int(r["count"])) for r in store.query(q)]

    def js() -> list[tuple[int, int]]:
        return [(int(u), int(n)) for u, n in jcon.execute(Q2_JSON_SQL).fetchall()]

    def ch() -> list[tuple[int, int]]:
        return [(int(u), int(n)) for u, n in chdb_rows(chdb, ch_sql)]

    contenders: dict[str, Callable[[], Any]] = {"wideevents": we, "json column": js}
    if chdb is not None:
        contenders["chdb"] = ch
    timings, answers = interleave(contenders, runs, "q2")
    notes = _check_q2(answers)
    captured = capture(store, lambda: store.query(q))
    steps = traced_steps(store, captured, ["weighted()", "compiled query"], runs)
    assert store.con is not None
    steps += time_statements(store.con, [("same question, plain SQL", Q2_PLAIN_SQL, [])], runs)
    return QResult(timings, answers["wideevents"], notes, steps)


# -- q3: breakdown vs one GROUP BY per field ---------------------------------------------


@dataclass
class NaivePlan:
    """What a person writing it by hand knows up front: the fields worth comparing, and
    which numeric ones have too many values to compare one by one."""

    by_value: list[str]
    binned: list[str]
    ids: list[str]


def naive_plan(store: Store) -> NaivePlan:
    schema = store.schema
    fields = [c for c, t in schema.columns.items() if c not in SKIP and t != "JSON"]
    parts = ", ".join(f"approx_count_distinct({quote_ident(c)})" for c in fields)
    assert store.con is not None
    row = store.con.execute(f"SELECT count(*), {parts} FROM {EVENTS}").fetchone()
    assert row is not None
    n, distinct = int(row[0]), dict(zip(fields, row[1:], strict=True))
    plan = NaivePlan([], [], [])
    for c in fields:
        d = int(distinct[c] or 0)
        numeric = schema.is_numeric(c)
        if not numeric and d > 1000 and d > NEAR_UNIQUE * n:
            plan.ids.append(c)
        elif numeric and d > FEW_VALUES:
            plan.binned.append(c)
        else:
            plan.by_value.append(c)
    return plan


def naive_breakdown(
    con: duckdb.DuckDBPyConnection, plan: NaivePlan, p99: float
) -> dict[str, dict[Any, list[int]]]:
    """One query per field (two for many-valued numbers: deciles, then the bins)."""
    sel = "coalesce(duration_ms >= ?, false)"
    out: dict[str, dict[Any, list[int]]] = {}

    def group(c: str, value_sql: str) -> None:
        counts: dict[Any, list[int]] = {}
        sql = f"SELECT {value_sql} AS v, {sel} AS sel, count(*) FROM {EVENTS} GROUP BY ALL"
        for v, s, k in con.execute(sql, [p99]).fetchall():
            counts.setdefault(v, [0, 0])[0 if s else 1] += int(k)
        out[c] = counts

    for c in plan.by_value:
        group(c, quote_ident(c))
    deciles = repr(DECILES)
    for c in plan.binned:
        col = quote_ident(c)
        row = con.execute(
            f"SELECT quantile_disc({col}, {deciles}) FILTER (WHERE NOT {sel}) FROM {EVENTS}",
            [p99],
        ).fetchone()
        edges = sorted({float(e) for e in (row[0] if row else None) or [] if e is not None})
        bins = " + ".join(f"({col} >= {e!r})::INTEGER" for e in edges) or "0"
        group(c, f"CASE WHEN {col} IS NULL THEN NULL ELSE {bins} END")
    return out


def _naive_top(counts: dict[str, dict[Any, list[int]]], exclude: str) -> str:
    """The field with the largest gap in share for one value, as breakdown scores it."""
    best, best_score = "", -1.0
    for c, values in counts.items():
        if c == exclude:
            continue
        s_total = sum(v[0] for v in values.values()) or 1
        b_total = sum(v[1] for v in values.values()) or 1
        score = max(abs(s / s_total - b / b_total) for s, b in values.values())
        if score > best_score:
            best, best_score = c, score
    return best


@dataclass
class Q3Result:
    timings: dict[str, Timed]
    top_field: str
    top_value: str
    top_score: float
    second: str
    naive_top: str
    fields_compared: int
    naive_queries: int
    notes: list[str]
    steps: list[Step]


def measure_q3(store: Store, ds: Dataset, runs: int) -> Q3Result:
    select = [parse_filter(ds.select)]
    plan = naive_plan(store)
    assert store.con is not None
    con = store.con

    def fast() -> list[dict[str, Any]]:
        return breakdown(store, select, [], TimeRange())

    def naive() -> dict[str, dict[Any, list[int]]]:
        return naive_breakdown(con, plan, ds.p99)

    timings, answers = interleave({"breakdown()": fast, "naive": naive}, runs, "q3")
    results: list[dict[str, Any]] = answers["breakdown()"]
    ranked = [r for r in results if not r["in_selection"] and not r.get("near_unique")]
    if not ranked:
        raise InvalidMeasurementError("q3: breakdown ranked no field")
    top = ranked[0]
    notes = []
    top_value = str(top["values"][0]["value"]) if top["values"] else ""
    if top["field"] == PLANTED_FIELD and top_value != BAD_BUILD:
        notes.append(f"q3: {PLANTED_FIELD} ranks first but its top value is {top_value}")
    compared = len([r for r in results if not r.get("near_unique")])
    if compared < 20:
        notes.append(f"q3: breakdown compared only {compared} fields (want >= 20)")
    naive_top = _naive_top(answers["naive"], "duration_ms")
    if naive_top != top["field"]:
        notes.append(f"q3: the naive way ranks {naive_top} first, breakdown {top['field']}")
    demoted = [r["field"] for r in results if r.get("near_unique")]
    if sorted(demoted) != sorted(plan.ids):
        notes.append(f"q3: breakdown demoted {demoted}, the naive plan left out {plan.ids}")
    captured = capture(store, fast)
    steps = traced_steps(
        store, captured, ["pass 1 (distincts, deciles)", "pass 2 (GROUPING SETS)"], runs
    )
    steps += what_ifs(store, captured, runs)
    return Q3Result(
        timings=timings,
        top_field=str(top["field"]),
        top_value=top_value,
        top_score=float(top["score"]),
        second=f"{ranked[1]['field']} {ranked[1]['score']:.2f}" if len(ranked) > 1 else "-",
        naive_top=naive_top,
        fields_compared=compared,
        naive_queries=len(plan.by_value) + 2 * len(plan.binned),
        notes=notes,
        steps=steps,
    )


_CAST_VARCHAR = re.compile(r'CAST\(("(?:[^"]|"")*") AS VARCHAR\)')
_DECILE = re.compile(r", quantile_disc\([^)]*\[[^]]*\]\) FILTER \(WHERE NOT __sel\)")
_BASE = re.compile(
    r"\(SELECT \*, coalesce\(\((?P<sel>.*?)\), false\) AS __sel, "
    rf"coalesce\(sample_rate, 1\) AS __w FROM {EVENTS} WHERE true\)"
)
PASS1_SAMPLE_PCT = 2  # about 200,000 rows of 10M: plenty for deciles and distinct ratios
PASS2_SAMPLE_PCT = 10  # about 1,000,000 baseline rows of 10M: shares to ~0.1 point


def what_ifs(store: Store, captured: list[Statement], runs: int) -> list[Step]:
    """Breakdown's own two statements, edited to show where their time goes and what a
    change would save. wideevents does not run these; an edit whose pattern is no longer in
    the SQL is left out. The sampled pair is a sketch of a faster breakdown: pass 1 on a
    small sample, pass 2 over the selected rows in full plus a sample of the baseline
    weighted up (its ranking was checked by hand against the exact one; see the report)."""
    if len(captured) != 2:
        return []
    (p1, p1_params), (p2, p2_params) = captured
    source = f"FROM {EVENTS} WHERE "
    raw = _CAST_VARCHAR.sub(r"\1", p2)
    n_deciles = len(_DECILE.findall(p1))
    sample1 = f"TABLESAMPLE system({PASS1_SAMPLE_PCT}%)"
    sample2 = f"TABLESAMPLE system({PASS2_SAMPLE_PCT}%)"

    def sampled_base(m: re.Match[str]) -> str:
        sel = m.group("sel")
        return (
            f"(SELECT *, true AS __sel, coalesce(sample_rate, 1) AS __w FROM {EVENTS} "
            f"WHERE {sel} UNION ALL SELECT *, false AS __sel, "
            f"{100 // PASS2_SAMPLE_PCT} * coalesce(sample_rate, 1) AS __w "
            f"FROM {EVENTS} {sample2} WHERE NOT coalesce(({sel}), false))"
        )

    sampled2 = _BASE.sub(sampled_base, raw, count=1)
    # (label, original, edited, parameters)
    edits: list[tuple[str, str, str, list[Any]]] = [
        (f"pass 1 without its {n_deciles} exact deciles", p1, _DECILE.sub("", p1), p1_params),
        (
            f"pass 1 on {sample1}",
            p1,
            p1.replace(source, f"FROM {EVENTS} {sample1} WHERE ", 1),
            p1_params,
        ),
        ("pass 2 without CAST(... AS VARCHAR)", p2, raw, p2_params),
        (
            f"pass 2, no CAST, selection + {PASS2_SAMPLE_PCT}% sample of baseline",
            raw,
            sampled2,
            [*p2_params, *p2_params],  # the select filter twice; there is no --where
        ),
    ]
    statements = [(f"  {name}", new, params) for name, old, new, params in edits if new != old]
    assert store.con is not None
    steps = time_statements(store.con, statements, runs)
    sketch = [s for s in steps if "sample" in s.name.lower()]
    if len(sketch) == 2:
        steps.append(Step("  = the sampled sketch, both passes", sum(s.median for s in sketch)))
    return steps


# -- CLI processes -----------------------------------------------------------------------

ANATOMY = r"""
import json, sys, time
t = [time.perf_counter()]
import wideevents.cli  # what the entry point imports: click, duckdb, every command
t.append(time.perf_counter())
from wideevents.query import Query, Store, parse_calc
from wideevents.query.schema import Schema
from wideevents.store.ingest import connect, ingest
store = Store(sys.argv[1])
store._lock = store.paths.lock(exclusive=True, timeout=30.0)
store._lock.__enter__()
t.append(time.perf_counter())
store.con = connect(store.paths)
t.append(time.perf_counter())
ingest(store.con, store.paths)
t.append(time.perf_counter())
store.schema = Schema.load(store.con)
t.append(time.perf_counter())
q = Query(calcs=[parse_calc("count"), parse_calc("p99(duration_ms)")], group_by=["http.route"])
rows = store.query(q)
t.append(time.perf_counter())
text = json.dumps(rows, default=str)
t.append(time.perf_counter())
store.close()
t.append(time.perf_counter())
names = ["import wideevents.cli", "take the lock", "connect()", "ingest() (nothing spooled)",
         "Schema.load()", "store.query()", "json.dumps", "close()"]
print(json.dumps(dict(zip(names, [b - a for a, b in zip(t, t[1:])]))))
"""


@dataclass
class CliResult:
    timings: dict[str, Timed]
    anatomy: dict[str, float]  # phase -> median s, inside one process
    interpreter: float  # `python -c pass`
    top_field: str


def _wideevents_exe() -> str:
    exe = Path(sys.executable).with_name("wideevents")
    if not exe.exists():
        raise InvalidMeasurementError(f"no wideevents entry point next to {sys.executable}")
    return str(exe)


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        raise InvalidMeasurementError(
            f"{' '.join(args[:3])} ... exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc.stdout.decode()


def measure_cli(ds: Dataset, runs: int) -> CliResult:
    exe = _wideevents_exe()
    db = str(ds.db)
    query = [exe, "query", "--db", db, "-c", "count", "-c", "p99(duration_ms)", "-g", Q1_GROUP]
    query += ["--format", "json"]
    brk = [exe, "breakdown", "--db", db, "--select", ds.select, "--format", "json"]

    def run_query() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(_run(query))
        return rows

    def run_breakdown() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(_run(brk))
        return rows

    def run_pass() -> str:
        return _run([sys.executable, "-c", "pass"])

    timings, answers = interleave(
        {
            "wideevents query": run_query,
            "wideevents breakdown": run_breakdown,
            "python -c pass": run_pass,
        },
        runs,
        "cli",
    )
    rows = answers["wideevents query"]
    if sum(int(r["count"]) for r in rows) != ds.n or len(rows) != len(ROUTES):
        raise InvalidMeasurementError(f"cli query: unexpected rows {rows}")
    results = answers["wideevents breakdown"]
    ranked = [r for r in results if not r["in_selection"] and not r.get("near_unique")]
    top = str(ranked[0]["field"]) if ranked else "-"
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        got = json.loads(_run([sys.executable, "-c", ANATOMY, db]))
        for k, v in got.items():
            phases.setdefault(k, []).append(float(v))
    anatomy = {k: statistics.median(v) for k, v in phases.items()}
    interpreter = timings.pop("python -c pass").median
    return CliResult(timings, anatomy, interpreter, top)


# -- reporting ---------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[tuple[str, Timed]]) -> None:
    head = f"{'measurement':<44} {'median s':>9} {'min s':>8} {'max s':>8} {'CPU s':>7} {'runs':>5}"
    print(head)
    print("-" * len(head))
    for label, t in rows:
        cpu = "" if math.isnan(t.cpu_median) else f"{t.cpu_median:.3f}"
        print(
            f"{label:<44} {t.median:>9.3f} {min(t.wall):>8.3f} {max(t.wall):>8.3f} "
            f"{cpu:>7} {len(t.wall):>5}"
        )
    print(
        "wall seconds; CPU s: median CPU of this process (all threads) and of its child "
        "processes; CPU/wall near 2 means both cores busy; cli rows are whole processes"
    )


def print_steps(title: str, steps: list[Step]) -> None:
    print(title)
    for s in steps:
        sql = f"  [{_sql_label(s.sql)}]" if s.sql else ""
        print(f"  {s.name:<54} {s.median:>8.3f} s{sql}")


def _ratio(a: float, b: float | None) -> float | None:
    return None if b is None or b <= 0 else a / b


def targets(
    q1: QResult, q2: QResult, q3: Q3Result, cli: CliResult | None, chdb_ok: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, res, limit in (("q1", q1, TARGET_Q1_S), ("q2", q2, TARGET_Q2_S)):
        we = res.timings["wideevents"].median
        js = res.timings["json column"].median
        ch = res.timings["chdb"].median if chdb_ok else None
        ratio = _ratio(we, ch)
        ok = we <= limit and (ratio is not None and ratio <= TARGET_VS_CHDB)
        ch_text = f"{ch:.3f} s" if ch is not None else "skipped"
        ratio_text = f"{ratio:.2f}" if ratio is not None else "n/a"
        print(
            f"{name}: {we:.3f} s (json column {js:.3f} s, chdb {ch_text}) = {ratio_text} x chdb "
            f"(targets <= {limit:g} s and <= {TARGET_VS_CHDB:g}x chdb) {_verdict(ok)}"
        )
        out.append(
            {
                "figure": name,
                "wideevents_s": round(we, 4),
                "json_column_s": round(js, 4),
                "chdb_s": None if ch is None else round(ch, 4),
                "ratio_vs_chdb": None if ratio is None else round(ratio, 3),
                "target_s": limit,
                "target_ratio": TARGET_VS_CHDB,
                "pass": ok,
            }
        )
    fast = q3.timings["breakdown()"].median
    naive = q3.timings["naive"].median
    ratio = fast / naive
    first = q3.top_field == PLANTED_FIELD
    ok = fast <= TARGET_Q3_S and ratio <= TARGET_VS_NAIVE and first
    print(
        f"q3: {fast:.3f} s, naive {naive:.3f} s = {ratio:.2f} x naive, top field {q3.top_field} "
        f"(targets <= {TARGET_Q3_S:g} s, <= {TARGET_VS_NAIVE:g}x naive, planted cause first) "
        f"{_verdict(ok)}"
    )
    out.append(
        {
            "figure": "q3",
            "breakdown_s": round(fast, 4),
            "naive_s": round(naive, 4),
            "ratio_vs_naive": round(ratio, 3),
            "top_field": q3.top_field,
            "planted_first": first,
            "target_s": TARGET_Q3_S,
            "target_ratio": TARGET_VS_NAIVE,
            "pass": ok,
        }
    )
    if cli is not None:
        t = cli.timings["wideevents query"].median
        ok = t <= TARGET_CLI_S
        print(
            f"cli: wideevents query process {t:.3f} s (target <= {TARGET_CLI_S:g} s) {_verdict(ok)}"
        )
        out.append(
            {"figure": "cli", "query_process_s": round(t, 4), "target_s": TARGET_CLI_S, "pass": ok}
        )
    return out


# -- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, help=f"events (default {DEFAULT_EVENTS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs after a warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "--keep", type=Path, help="keep the generated data in DIR and reuse it on the next run"
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI processes")
    parser.add_argument("--tmpdir", help="where to make the temporary directory")
    args = parser.parse_args(argv)
    n = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    runs = max(1, args.runs)
    assert len(USER_FIELDS) == 25 and not set(USER_FIELDS) & set(CORE_COLUMNS)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(
        f"wideevents {_version('wideevents')}, duckdb {_version('duckdb')}, "
        f"chdb {_version('chdb')} (chdb-core {_version('chdb-core')})"
    )
    chdb, chdb_error = load_chdb()
    if chdb_error is not None:
        print(f"skipped: chdb: {chdb_error}")
    load0 = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="wideevents-bench-query-", dir=args.tmpdir) as d:
        try:
            ds = prepare(n, args.keep, Path(d))
            print(
                f"{n:,} events of {len(USER_FIELDS)} user fields"
                + (" (generated: " if ds.generated else " (reused from --keep, generated in: ")
                + ", ".join(f"{k} {v:.0f} s" for k, v in ds.seconds.items())
                + ")"
            )
            print(
                "files: "
                + ", ".join(f"{k} {_mib(v)} ({v / n:.0f} B/event)" for k, v in ds.sizes.items())
            )
            print(
                f"planted: {PLANTED_FIELD} = {BAD_BUILD} on web-07 and web-13, "
                f"{ds.bad_share * 100:.2f}% of events; selection for q3: {ds.select}"
            )
            print(f"{runs} timed runs after one warm-up, contenders interleaved")

            t0 = time.perf_counter()
            store = Store(ds.db, ingest_first=True)
            store.__enter__()
            open_s = time.perf_counter() - t0
            try:
                check_schema(ds, store)
                print(profile(store))
                print()
                jcon = duckdb.connect(str(ds.json_db), read_only=True)
                try:
                    q1 = measure_q1(store, jcon, chdb, ds, runs)
                    q2 = measure_q2(store, jcon, chdb, ds, runs)
                finally:
                    jcon.close()
                q3 = measure_q3(store, ds, runs)
                weighted_steps = [Step("weighted() alone", median_call(store.weighted, runs))]
            finally:
                store.close()  # the CLI processes need the lock
            rss = _peak_rss_mib()
            cli = None if args.no_cli else measure_cli(ds, runs)
        except InvalidMeasurementError as exc:
            print(f"aborted, the measurement is invalid: {exc}", file=sys.stderr)
            return 2
    load1 = os.getloadavg()

    rows: list[tuple[str, Timed]] = []
    for name, res in (("q1", q1), ("q2", q2)):
        for k, t in res.timings.items():
            rows.append((f"{name} {k}", t))
    rows.append((f"q3 breakdown() ({q3.fields_compared} fields)", q3.timings["breakdown()"]))
    rows.append((f"q3 naive ({q3.naive_queries} queries)", q3.timings["naive"]))
    if cli is not None:
        for k, t in cli.timings.items():
            rows.append((f"cli {k} (process)", t))
    print_table(rows)
    print()
    q1_rows = sorted(q1.answer.items(), key=lambda kv: -kv[1][0])
    print(
        "q1 answer (wideevents): "
        + ", ".join(f"{r} {c} p99 {p:.0f}" for r, (c, p) in q1_rows[:4])
        + (f" ... ({len(q1_rows)} routes)" if len(q1_rows) > 4 else "")
    )
    print("q2 answer (wideevents): " + ", ".join(f"{u}:{c}" for u, c in q2.answer))
    print(
        f"q3 answer: first {q3.top_field} (top value {q3.top_value}, score {q3.top_score:.2f}), "
        f"second {q3.second}; naive ranks {q3.naive_top} first"
        + (f"; cli breakdown ranks {cli.top_field} first" if cli is not None else "")
    )
    for note in q1.notes + q2.notes + q3.notes:
        print(f"note: {note}")
    print()
    print("where the time goes (each statement on its own, median of runs):")
    print(f"  {'Store(ingest_first=True).__enter__ (once)':<54} {open_s:>8.3f} s")
    print_steps("q1 Store.query:", q1.steps)
    print_steps("q2 Store.query:", q2.steps + weighted_steps)
    print_steps("q3 breakdown():", q3.steps)
    if cli is not None:
        print("cli: one process (median of runs)")
        print(f"  {'interpreter start (python -c pass)':<54} {cli.interpreter:>8.3f} s")
        for k, v in cli.anatomy.items():
            print(f"  {k:<54} {v:>8.3f} s")
    print(
        f"peak RSS of this process {rss:,.0f} MiB; load average {load0[0]:.2f} at the start, "
        f"{load1[0]:.2f} at the end ({os.cpu_count()} CPUs)"
    )
    print()
    verdicts = targets(q1, q2, q3, cli, chdb is not None)

    if args.json:

        def timing(t: Timed) -> dict[str, Any]:
            return {
                "median_s": round(t.median, 5),
                "runs_s": [round(x, 5) for x in t.wall],
                "cpu_s": [round(x, 5) for x in t.cpu],
            }

        print(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "versions": {d: _version(d) for d in ("wideevents", "duckdb", "chdb")},
                    "n": n,
                    "runs": runs,
                    "dataset": {
                        "p99": ds.p99,
                        "bad_share": ds.bad_share,
                        "generated": ds.generated,
                        "seconds": ds.seconds,
                        "bytes": ds.sizes,
                    },
                    "skipped": {"chdb": chdb_error} if chdb_error else {},
                    "timings": {label: timing(t) for label, t in rows},
                    "steps": {
                        name: [asdict(s) for s in steps]
                        for name, steps in (("q1", q1.steps), ("q2", q2.steps), ("q3", q3.steps))
                    },
                    "store_open_s": round(open_s, 5),
                    "cli_anatomy_s": None if cli is None else cli.anatomy,
                    "q3": {
                        "top_field": q3.top_field,
                        "top_value": q3.top_value,
                        "score": q3.top_score,
                        "naive_top": q3.naive_top,
                    },
                    "notes": q1.notes + q2.notes + q3.notes,
                    "peak_rss_mib": round(rss),
                    "loadavg": [load0[0], load1[0]],
                    "targets": verdicts,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
