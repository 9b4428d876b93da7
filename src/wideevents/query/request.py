"""A query, breakdown or event list from the strings a person types, the CLI's vocabulary.

``wideevents serve`` builds its API calls with these; each string is parsed exactly as the
matching CLI flag (``--calc``, ``--where``, ``--since`` …), so a URL and a command line mean
the same thing. :func:`jsonable` makes results JSON the way ``--format json`` prints them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .model import Filter, Query, TimeRange
from .parse import (
    QueryError,
    parse_calc,
    parse_duration,
    parse_filter,
    parse_having,
    parse_order,
    parse_time,
)


def time_range(since: str | None, start: str | None, end: str | None) -> TimeRange:
    """``since`` (``1h``), ``start``/``end`` (ISO times): ``--since``, ``--from``, ``--to``."""
    return TimeRange(
        since=parse_duration(since) if since else None,
        start=parse_time(start, "--from") if start else None,
        end=parse_time(end, "--to") if end else None,
    )


def filters(texts: Sequence[str]) -> list[Filter]:
    return [parse_filter(t) for t in texts if t.strip()]


def make_query(
    *,
    calcs: Sequence[str] = (),
    where: Sequence[str] = (),
    group_by: Sequence[str] = (),
    orders: Sequence[str] = (),
    havings: Sequence[str] = (),
    limit: int = 100,
    time: TimeRange | None = None,
    granularity: str | None = None,
) -> Query:
    """A :class:`Query` from ``wideevents query`` flags as typed."""
    if limit < 1:
        raise QueryError(f"--limit must be at least 1, got {limit}")
    return Query(
        calcs=[parse_calc(c) for c in calcs if c.strip()] or [parse_calc("count")],
        filters=filters(where),
        group_by=[g.strip() for g in group_by if g.strip()],
        orders=[parse_order(o) for o in orders if o.strip()],
        havings=[parse_having(h) for h in havings if h.strip()],
        limit=limit,
        time=time or TimeRange(),
        granularity=parse_duration(granularity) if granularity else None,
    )


def jsonable(value: Any) -> Any:
    """*value* as ``--format json`` prints it: ISO times (``Z``), finite floats or null."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
