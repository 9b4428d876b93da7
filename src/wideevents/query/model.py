"""The query model: what a user asks, independent of SQL.

Honeycomb's vocabulary: filters (``FIELD OP VALUE``, ANDed), calculations, group-by, order,
having, limit, a time range and an optional granularity for time series. Built by
:mod:`.parse` from CLI strings and compiled by :mod:`.compile`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

FILTER_OPS = (
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "!contains",
    "starts-with",
    "in",
    "not-in",
    "exists",
    "!exists",
)
UNARY_OPS = ("exists", "!exists")
LIST_OPS = ("in", "not-in")

PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
CALC_OPS = ("count", "count_distinct", "sum", "avg", "min", "max", *PERCENTILES, "heatmap")


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    values: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if self.op in UNARY_OPS:
            return f"{self.field} {self.op}"
        if self.op in LIST_OPS:
            return f"{self.field} {self.op} ({', '.join(map(_show, self.values))})"
        return f"{self.field} {self.op} {_show(self.values[0])}"


_PLAIN = re.compile(r"[^\s\"'`(),=<>!\\]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(value: Any) -> str:
    """A value as the filter parser reads it back: bare when it is one plain word, else in
    double quotes with backslash escapes (a newline as ``\\n``, so a filter is one line)."""
    text = str(value)
    if isinstance(value, str) and not _PLAIN.fullmatch(text):
        return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'
    return text


@dataclass(frozen=True)
class Calc:
    op: str
    field: str | None = None

    @property
    def label(self) -> str:
        """The result key, named as written: ``count``, ``p99(duration_ms)``."""
        return self.op if self.field is None else f"{self.op}({self.field})"


@dataclass(frozen=True)
class Order:
    key: str  # a calc label or a group-by field
    descending: bool = True


@dataclass(frozen=True)
class Having:
    calc: Calc
    op: str
    value: float


@dataclass
class TimeRange:
    since: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class Query:
    calcs: list[Calc] = field(default_factory=lambda: [Calc("count")])
    filters: list[Filter] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    havings: list[Having] = field(default_factory=list)
    limit: int | None = 100
    time: TimeRange = field(default_factory=TimeRange)
    granularity: timedelta | None = None
