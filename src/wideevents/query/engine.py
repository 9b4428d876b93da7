"""The Python query API the CLI is a thin layer over.

    with Store("wideevents.duckdb") as store:
        rows = store.query(Query(calcs=[Calc("count"), Calc("p99", "duration_ms")],
                                 group_by=["http.route"]))

Opening a :class:`Store` takes the store lock, ingests what is spooled (so events flushed a
second ago show), and keeps one connection until it is closed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import duckdb

from ..store.ingest import connect, ingest
from ..store.paths import StorePaths
from ..store.schema import EVENTS, quote_ident
from .compile import compile_query, require_numeric, where_sql
from .model import Filter, Query, TimeRange
from .parse import QueryError
from .schema import Schema


class StoreError(RuntimeError):
    """The store could not be read (missing, locked, damaged); the message says what to do."""


class Store:
    """An open store. Use as a context manager; every method runs parameterized SQL."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        ingest_first: bool = True,
        lock_timeout: float = 30.0,
    ) -> None:
        self.paths = StorePaths.for_db(db)
        self._ingest_first = ingest_first
        self._lock_timeout = lock_timeout
        self._lock: Any = None
        self.con: duckdb.DuckDBPyConnection | None = None
        self.schema = Schema({})
        self.now = datetime.now(timezone.utc)
        self.ingested = 0

    def __enter__(self) -> Store:
        if not self.paths.db.exists() and not self.paths.spool.exists():
            raise StoreError(
                f"no store at {self.paths.db}: emit some events first, or run `wideevents demo`"
            )
        self._lock = self.paths.lock(exclusive=True, timeout=self._lock_timeout)
        self._lock.__enter__()
        try:
            self.con = connect(self.paths)
            if self._ingest_first:
                self.ingested = ingest(self.con, self.paths).rows
            self.schema = Schema.load(self.con)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        assert self.con is not None, "use the Store as a context manager"
        return self.con.execute(sql, params).fetchall()

    def weighted(self) -> bool:
        """True when some stored event was kept by sampling (sample_rate > 1)."""
        ((top,),) = self._rows(f"SELECT coalesce(max(sample_rate), 1) FROM {EVENTS}", [])
        return bool(top > 1)

    def query(self, q: Query) -> list[dict[str, Any]]:
        """Aggregates: group-by fields (and ``time``) plus one key per calc as written."""
        bounds = {}
        for calc in q.calcs:
            if calc.op == "heatmap" and calc.field is not None:
                column = self.schema.resolve(calc.field)
                require_numeric(calc, self.schema, column)  # before its bounds are read
                params: list[Any] = []
                where = where_sql(q.filters, q.time, self.schema, self.now, params)
                col = quote_ident(column)
                ((lo, hi),) = self._rows(
                    f"SELECT min({col}), max({col}) FROM {EVENTS} WHERE {where}", params
                )
                bounds[column] = (float(lo or 0.0), float(hi or 1.0))
        compiled = compile_query(
            q, self.schema, weighted=self.weighted(), now=self.now, heatmap_bounds=bounds
        )
        rows = self._rows(compiled.sql, compiled.params)
        out = [dict(zip(compiled.keys, row, strict=True)) for row in rows]
        for label, edges in compiled.heatmaps.items():
            for r in out:
                r[label] = {"edges": edges, "counts": r[label]}
        return out

    def events(
        self,
        filters: list[Filter],
        time: TimeRange,
        *,
        order: str = "timestamp",
        descending: bool = True,
        limit: int = 20,
        columns: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The individual events behind an aggregate, newest (or slowest …) first."""
        params: list[Any] = []
        where = where_sql(filters, time, self.schema, self.now, params)
        order_col = quote_ident(self.schema.resolve(order))
        cols = (
            "*" if not columns else ", ".join(quote_ident(self.schema.resolve(c)) for c in columns)
        )
        sql = (
            f"SELECT {cols} FROM {EVENTS} WHERE {where} "
            f"ORDER BY {order_col} {'DESC' if descending else 'ASC'} NULLS LAST LIMIT ?"
        )
        params.append(int(limit))
        assert self.con is not None
        return self._records(self.con.execute(sql, params))

    def _records(self, cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
        """Rows as events: missing fields left out, JSON fields (lists, dicts) decoded."""
        names = [d[0] for d in cur.description or []]
        json_columns = {n for n in names if self.schema.columns.get(n) == "JSON"}
        out = []
        for row in cur.fetchall():
            record = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            for k in json_columns & record.keys():
                if isinstance(record[k], str):
                    try:
                        record[k] = json.loads(record[k])
                    except ValueError:
                        pass
            out.append(record)
        return out

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """One trace's events in tree order, each with its ``depth``."""
        assert self.con is not None
        cur = self.con.execute(
            f"SELECT * FROM {EVENTS} WHERE trace_id = ? ORDER BY timestamp", [trace_id.lower()]
        )
        events: list[dict[str, Any]] = []
        ids: set[Any] = set()
        for e in self._records(cur):
            if e.get("span_id") not in ids:  # an exporter's retry can store a span twice
                ids.add(e.get("span_id"))
                events.append(e)
        by_parent: dict[Any, list[dict[str, Any]]] = {}
        for e in events:
            parent = e.get("parent_id")
            by_parent.setdefault(parent if parent in ids else None, []).append(e)
        ordered: list[dict[str, Any]] = []
        placed: set[Any] = set()

        def walk(parent: Any, depth: int) -> None:
            for e in by_parent.get(parent, []):
                if e.get("span_id") not in placed:
                    placed.add(e.get("span_id"))
                    ordered.append({**e, "depth": depth})
                    walk(e.get("span_id"), depth + 1)

        walk(None, 0)
        for e in events:  # in a parent cycle (bad data): shown from the earliest, not dropped
            if e.get("span_id") not in placed:
                placed.add(e.get("span_id"))
                ordered.append({**e, "depth": 0})
                walk(e.get("span_id"), 1)
        return ordered

    def time_bounds(
        self, filters: list[Filter], time: TimeRange
    ) -> tuple[datetime | None, datetime | None]:
        """The first and last timestamp of the events that pass *filters* and *time*."""
        params: list[Any] = []
        where = where_sql(filters, time, self.schema, self.now, params)
        ((lo, hi),) = self._rows(
            f"SELECT min(timestamp), max(timestamp) FROM {EVENTS} WHERE {where}", params
        )
        return lo, hi

    def fields(self) -> list[dict[str, Any]]:
        """The schema: each field's type, (approximate) distinct count and null share."""
        columns = list(self.schema.columns)
        if not columns:
            return []
        parts = []
        for c in columns:
            col = quote_ident(c)
            parts.append(f"approx_count_distinct({col})")
            parts.append(f"count({col})")
        ((total, *stats),) = self._rows(f"SELECT count(*), {', '.join(parts)} FROM {EVENTS}", [])
        out = []
        for i, c in enumerate(columns):
            distinct, non_null = stats[2 * i], stats[2 * i + 1]
            out.append(
                {
                    "name": c,
                    "type": self.schema.columns[c],
                    "distinct": int(distinct),
                    "null_pct": round(100.0 * (total - non_null) / total, 2) if total else 0.0,
                }
            )
        return out


def run_sql(db: str | os.PathLike[str] | None, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The escape hatch: ingest, then run *sql* on a read-only connection that can read no
    other file and reach no network."""
    paths = StorePaths.for_db(db)
    with Store(db):
        pass  # refuses a missing store; ingests under the exclusive lock
    with paths.lock(exclusive=False, timeout=30.0):
        con = connect(paths, read_only=True, sandboxed=True)
        try:
            try:
                cur = con.execute(sql)
            except duckdb.ParserException as exc:
                raise QueryError(str(exc)) from None
            names = [d[0] for d in cur.description or []]
            return names, cur.fetchall()
        finally:
            con.close()


__all__ = ["QueryError", "Store", "StoreError", "run_sql"]
