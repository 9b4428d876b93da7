"""The query model compiled to parameterized DuckDB SQL.

Identifiers are quoted (any field name is safe) and every value the user typed is a ``?``
parameter: user input never becomes SQL text. Aggregates are weighted by ``sample_rate``
(an event kept 1 in n stands for n): ``count`` is Σ sample_rate, ``sum`` and ``avg`` weight
each value, percentiles are weighted (with a running sum of weights, only when some event
was sampled); ``count_distinct``, ``min`` and ``max`` are not weighted.
Percentiles are *discrete*: the smallest value with at least p of the weight at or below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..store.schema import EVENTS, quote_ident
from .model import LIST_OPS, PERCENTILES, Calc, Filter, Query, TimeRange
from .parse import QueryError
from .schema import Schema, coerce

WEIGHT = "coalesce(sample_rate, 1)"
HEATMAP_BUCKETS = 12


@dataclass
class Compiled:
    sql: str
    params: list[Any]
    keys: list[str]  # result keys, in column order
    heatmaps: dict[str, list[float]] = field(default_factory=dict)  # label → bucket edges


def filter_sql(f: Filter, schema: Schema, params: list[Any]) -> str:
    column = schema.resolve(f.field)
    col = quote_ident(column)
    typ = schema.type_of(column)
    op = f.op
    if op == "exists":
        return f"{col} IS NOT NULL"
    if op == "!exists":
        return f"{col} IS NULL"
    if op in ("contains", "!contains", "starts-with"):
        params.append(str(f.values[0]))
        text = f"CAST({col} AS VARCHAR)"
        if op == "contains":
            return f"contains({text}, ?)"
        if op == "!contains":
            return f"coalesce(NOT contains({text}, ?), true)"
        return f"starts_with({text}, ?)"
    values = [coerce(v, typ, column) for v in f.values]
    if op in LIST_OPS:
        params.extend(values)
        marks = ", ".join("?" for _ in values)
        if op == "in":
            return f"{col} IN ({marks})"
        return f"({col} NOT IN ({marks}) OR {col} IS NULL)"
    params.append(values[0])
    if op == "=":
        return f"{col} = ?"
    if op == "!=":
        return f"{col} IS DISTINCT FROM ?"
    return f"{col} {op} ?"


def time_sql(time: TimeRange, now: datetime, params: list[Any]) -> list[str]:
    parts = []
    if time.since is not None:
        params.append(now - time.since)
        parts.append("timestamp >= ?")
    if time.start is not None:
        params.append(time.start)
        parts.append("timestamp >= ?")
    if time.end is not None:
        params.append(time.end)
        parts.append("timestamp < ?")
    return parts


def all_of_sql(filters: list[Filter], schema: Schema, params: list[Any]) -> str:
    """*filters* ANDed as one true-or-false expression (an event without the field is false,
    never NULL), or ``true`` when there are none: a selection, a group, a condition."""
    if not filters:
        return "true"
    return f"coalesce({' AND '.join(f'({filter_sql(f, schema, params)})' for f in filters)}, false)"


def where_sql(
    filters: list[Filter], time: TimeRange, schema: Schema, now: datetime, params: list[Any]
) -> str:
    parts = time_sql(time, now, params) + [filter_sql(f, schema, params) for f in filters]
    return " AND ".join(f"({p})" for p in parts) if parts else "true"


def _agg_sql(calc: Calc, schema: Schema, params: list[Any], heat: list[float] | None) -> str:
    """One calculation over the CTE ``f``: fields renamed ``f<k>``, the weight ``__w``."""
    if calc.op == "count":
        return "coalesce(sum(__w), 0)::BIGINT"
    assert calc.field is not None
    column = schema.resolve(calc.field)
    col = _fcol(column)
    if calc.op in ("sum", "avg", "heatmap", *PERCENTILES):
        require_numeric(calc, schema, column)
    if calc.op == "count_distinct":
        return f"count(DISTINCT {col})"
    if calc.op in ("min", "max"):
        return f"{calc.op}({col})"
    if calc.op == "sum":
        return f"sum({col} * __w)"
    if calc.op == "avg":
        return f"sum({col} * __w) / sum(CASE WHEN {col} IS NOT NULL THEN __w END)"
    if calc.op in PERCENTILES:
        params.append(PERCENTILES[calc.op])
        return f"quantile_disc({col}, ?)"
    assert calc.op == "heatmap"
    assert heat is not None
    parts = []
    for i in range(len(heat) - 1):
        upper = "<=" if i == len(heat) - 2 else "<"
        params.extend([heat[i], heat[i + 1]])
        parts.append(f"coalesce(sum(__w) FILTER (WHERE {col} >= ? AND {col} {upper} ?), 0)")
    return "[" + ", ".join(parts) + "]"


def require_numeric(calc: Calc, schema: Schema, column: str) -> None:
    if not schema.is_numeric(column):
        raise QueryError(
            f"{calc.op}() needs a numeric field; {column!r} holds {schema.type_of(column)}"
        )


def _fcol(column: str) -> str:
    return quote_ident("f." + column)


def compile_query(
    q: Query,
    schema: Schema,
    *,
    weighted: bool,
    now: datetime,
    heatmap_bounds: dict[str, tuple[float, float]] | None = None,
) -> Compiled:
    """SQL and parameters for *q*. *weighted*: some stored event has sample_rate > 1."""
    # f: the filtered events with just the columns needed, the groups as g0…, the weight.
    group_exprs: list[str] = []
    keys: list[str] = []
    if q.granularity is not None:
        micros = int(q.granularity / timedelta(microseconds=1))
        if micros <= 0:
            raise QueryError("--granularity must be positive")
        group_exprs.append(f"time_bucket(to_microseconds({micros}::BIGINT), timestamp)")
        keys.append("time")
    group_cols = [schema.resolve(g) for g in q.group_by]
    group_exprs.extend(quote_ident(g) for g in group_cols)
    keys.extend(group_cols)
    gkeys = [f"g{i}" for i in range(len(group_exprs))]
    needed = sorted({schema.resolve(c.field) for c in q.calcs if c.field is not None})
    f_cols = [
        *(f"{e} AS g{i}" for i, e in enumerate(group_exprs)),
        *(f"{quote_ident(c)} AS {_fcol(c)}" for c in needed),
        f"{WEIGHT} AS __w",
    ]
    params: list[Any] = []
    where = where_sql(q.filters, q.time, schema, now, params)
    sql = f"WITH f AS (SELECT {', '.join(f_cols)} FROM {EVENTS} WHERE {where})"

    # Percentiles of sampled data are weighted: one CTE p<i> per percentile, the smallest
    # value whose running weight reaches q of its group's weight (a window, no expansion).
    weighted_pcts = {i for i, c in enumerate(q.calcs) if weighted and c.op in PERCENTILES}
    heatmaps: dict[str, list[float]] = {}
    agg_cols = list(gkeys)
    agg_params: list[Any] = []
    for i, calc in enumerate(q.calcs):
        heat = None
        if calc.op == "heatmap":
            assert calc.field is not None
            lo, hi = (heatmap_bounds or {}).get(schema.resolve(calc.field), (0.0, 1.0))
            heat = heatmaps[calc.label] = _edges(lo, hi)
        if i not in weighted_pcts:
            agg_cols.append(f"{_agg_sql(calc, schema, agg_params, heat)} AS c{i}")
        keys.append(calc.label)
    group_by = f" GROUP BY {', '.join(gkeys)}" if gkeys else ""
    agg_cols.append("count(*) AS __n")  # never an empty select list
    sql += f", a AS (SELECT {', '.join(agg_cols)} FROM f{group_by})"
    params += agg_params
    source = "a"
    partition = f"PARTITION BY {', '.join(gkeys)} " if gkeys else ""
    for i in sorted(weighted_pcts):
        calc = q.calcs[i]
        assert calc.field is not None
        column = schema.resolve(calc.field)
        require_numeric(calc, schema, column)
        col = _fcol(column)
        sel_g = "".join(f"{g}, " for g in gkeys)
        sql += (
            f", p{i} AS (SELECT {sel_g}min(v) AS c{i} FROM ("
            f"SELECT {sel_g}{col} AS v, "
            f"sum(__w) OVER ({partition}ORDER BY {col} ROWS UNBOUNDED PRECEDING) AS cw, "
            f"sum(__w) OVER ({partition.strip()}) AS tw FROM f WHERE {col} IS NOT NULL) "
            f"WHERE cw >= ceil(? * tw){group_by})"
        )
        params.append(PERCENTILES[calc.op])
        if gkeys:
            on = " AND ".join(f"a.{g} IS NOT DISTINCT FROM p{i}.{g}" for g in gkeys)
            source += f" LEFT JOIN p{i} ON {on}"
        else:
            source += f", p{i}"
    out = [f"a.{g}" for g in gkeys]
    out += [f"{f'p{i}' if i in weighted_pcts else 'a'}.c{i} AS c{i}" for i in range(len(q.calcs))]
    sql += f" SELECT {', '.join(out)} FROM {source}"

    labels = {c.label: i for i, c in enumerate(q.calcs)}
    conditions = []
    for h in q.havings:
        if h.calc.label not in labels:
            raise QueryError(f"--having uses {h.calc.label!r}, which is not among the --calc")
        conditions.append(f"c{labels[h.calc.label]} {h.op} ?")
        params.append(h.value)
    if conditions:
        sql = f"SELECT * FROM ({sql}) WHERE {' AND '.join(conditions)}"
    order = [_order_sql(o.key, o.descending, labels, group_cols, q) for o in q.orders]
    if not order:
        if q.granularity is not None:
            order.append("g0 ASC")
        elif q.calcs and q.calcs[0].op != "heatmap":
            order.append("c0 DESC NULLS LAST")
    if order:
        sql += " ORDER BY " + ", ".join(order)
    if q.limit is not None:
        sql += f" LIMIT {int(q.limit)}"
    return Compiled(sql, params, keys, heatmaps)


def _order_sql(
    key: str, descending: bool, labels: dict[str, int], group_cols: list[str], q: Query
) -> str:
    direction = "DESC" if descending else "ASC"
    if key in labels:
        return f"c{labels[key]} {direction} NULLS LAST"
    if key == "time" and q.granularity is not None:
        return f"g0 {direction}"
    lower = {g.lower(): n for n, g in enumerate(group_cols)}
    if key.lower() in lower:
        n = lower[key.lower()] + (1 if q.granularity is not None else 0)
        return f"g{n} {direction} NULLS LAST"
    raise QueryError(f"--order {key!r} is neither a --calc as written nor a --group-by field")


def _edges(lo: float, hi: float) -> list[float]:
    """Bucket edges for a heatmap: logarithmic when the range spans decades (latencies)."""
    if hi <= lo:
        hi = lo + 1.0
    if lo > 0 and hi / lo > 20:
        ratio = (hi / lo) ** (1 / HEATMAP_BUCKETS)
        return [lo * ratio**i for i in range(HEATMAP_BUCKETS)] + [hi]
    step = (hi - lo) / HEATMAP_BUCKETS
    return [lo + step * i for i in range(HEATMAP_BUCKETS)] + [hi]
