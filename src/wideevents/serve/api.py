"""The JSON API behind the UI: the CLI's commands over HTTP, with the CLI's vocabulary.

Every endpoint takes the matching command's flags as query parameters, repeatable where the
flag is (``/api/query?calc=count&calc=p99(duration_ms)&where=http.route%20exists``), and
answers with exactly what ``--format json`` of that command prints:

=====================  ======================================================================
``/api/query``         ``wideevents query``: calc, where, group_by, order, having, limit
                       (≤ 10,000), since, from, to, granularity (``auto``: about 60 buckets
                       over the data)
``/api/breakdown``     ``wideevents breakdown``: select, where, since, from, to, values
``/api/events``        ``wideevents events``: where, since, from, to, order, asc, limit (≤ 1000)
``/api/trace/{id}``    ``wideevents trace ID``
``/api/fields``        ``wideevents fields``
=====================  ======================================================================

A bad expression answers 400 with ``{"error", "text", "position"}`` (the caret's place),
as does a ``limit`` over the cap; a missing store 404; a busy one (locked by another
process) 503 with ``Retry-After``. Every error is JSON with an ``error`` message. Each call
opens the store, which ingests what is spooled first, so spans received a moment ago are in
the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import duckdb
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..query import request as build
from ..query.breakdown import breakdown
from ..query.engine import Store, StoreError
from ..query.parse import QueryError
from ..store.paths import StoreLocked

_NICE = [
    timedelta(seconds=s)
    for s in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
]
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")

MAX_QUERY_ROWS = 10_000
"""The largest ``limit`` of ``/api/query``: a page shows no more, and rows are kept in memory."""
MAX_EVENTS = 1000
"""The largest ``limit`` of ``/api/events`` (a larger one is cut to it)."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(build.jsonable(data), default=str)
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return json_response({"error": message, **extra}, status, headers)


def _locked(exc: duckdb.Error) -> bool:
    """DuckDB's "Could not set lock on file …": another process has the database open."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class Api:
    """The endpoints, bound to one store."""

    def __init__(self, db: str, before_read: Callable[[], object] | None = None) -> None:
        self.db = db
        self.before_read = before_read

    def _guard(self, run: Callable[[], Response]) -> Response:
        try:
            if self.before_read is not None:
                self.before_read()  # spans received a moment ago are read too
            return run()
        except QueryError as exc:
            return error_response(
                400, exc.message, text=exc.text, position=exc.position, detail=str(exc)
            )
        except StoreError as exc:
            return error_response(404, str(exc))
        except StoreLocked as exc:
            return error_response(503, str(exc), {"Retry-After": "5"})
        except duckdb.Error as exc:
            if _locked(exc):
                message = str(exc).strip().splitlines()[0]
                return error_response(
                    503,
                    f"the store is open in another process; try again once it is closed "
                    f"({message})",
                    {"Retry-After": "5"},
                )
            # The compiler passes values as parameters; what DuckDB refuses is the input.
            return error_response(400, str(exc).strip())

    def query(self, request: Request) -> Response:
        p = request.query_params

        def run() -> Response:
            time = build.time_range(p.get("since"), p.get("from"), p.get("to"))
            granularity = p.get("granularity") or None
            headers = {}
            with Store(self.db) as store:
                if granularity == "auto":
                    granularity = _auto_granularity(store, build.filters(p.getlist("where")), time)
                    headers["X-Granularity"] = granularity
                q = build.make_query(
                    calcs=p.getlist("calc"),
                    where=p.getlist("where"),
                    group_by=p.getlist("group_by"),
                    orders=p.getlist("order"),
                    havings=p.getlist("having"),
                    limit=_int(p.get("limit"), 100, "limit", most=MAX_QUERY_ROWS),
                    time=time,
                    granularity=granularity,
                )
                rows = store.query(q)
            return json_response(rows, headers=headers)

        return self._guard(run)

    def breakdown(self, request: Request) -> Response:
        p = request.query_params

        def run() -> Response:
            select = build.filters(p.getlist("select"))
            if not select:
                raise QueryError("breakdown needs at least one select expression")
            filters = build.filters(p.getlist("where"))
            time = build.time_range(p.get("since"), p.get("from"), p.get("to"))
            with Store(self.db) as store:
                results = breakdown(
                    store, select, filters, time, top_values=_int(p.get("values"), 5, "values")
                )
            return json_response(results)

        return self._guard(run)

    def events(self, request: Request) -> Response:
        p = request.query_params

        def run() -> Response:
            filters = build.filters(p.getlist("where"))
            time = build.time_range(p.get("since"), p.get("from"), p.get("to"))
            with Store(self.db) as store:
                rows = store.events(
                    filters,
                    time,
                    order=p.get("order") or "timestamp",
                    descending=p.get("asc") not in ("1", "true"),
                    limit=min(_int(p.get("limit"), 20, "limit"), MAX_EVENTS),
                )
            return json_response(rows)

        return self._guard(run)

    def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]

        def run() -> Response:
            if not _TRACE_ID.fullmatch(trace_id):
                raise QueryError(f"{trace_id!r} is not a trace id (32 hex digits)")
            with Store(self.db) as store:
                rows = store.trace(trace_id)
            if not rows:
                return error_response(404, f"no events in trace {trace_id!r}")
            return json_response(rows)

        return self._guard(run)

    def fields(self, request: Request) -> Response:
        def run() -> Response:
            with Store(self.db) as store:
                return json_response(store.fields())

        return self._guard(run)


def _int(text: str | None, default: int, name: str, most: int | None = None) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise QueryError(f"{name} must be at least 1, got {value}")
    if most is not None and value > most:
        raise QueryError(
            f"{name} must be at most {most:,}, got {value:,}: filter or group more narrowly "
            "(the CLI has no cap)"
        )
    return value


def _auto_granularity(store: Store, filters: list[Any], time: Any) -> str:
    """About 60 time buckets over the events that pass the filters, on a round size."""
    lo, hi = store.time_bounds(filters, time)
    if time.since is not None:
        lo = store.now - time.since
    if time.start is not None:
        lo = time.start
    if time.end is not None:
        hi = time.end
    span = (hi - lo) if lo is not None and hi is not None else timedelta(hours=1)
    step = next((n for n in _NICE if n * 60 >= span), _NICE[-1])
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
