"""Breakdown (BubbleUp): what is different about the selected events, field by field.

The selection (``--select`` filters, ANDed) is compared with the baseline (the other events
that pass ``--where``) across every field, in two scans of the data:

1. one aggregate pass: each field's approximate distinct count, and for numeric fields the
   baseline's deciles, which become the bins;
2. one ``GROUPING SETS`` pass: Σ sample_rate per (field value or bin, in selection or not).

Strings, booleans and numbers with few distinct values (status codes, shard ids) are compared
value by value, other numbers on the baseline's decile bins, a missing value as ``(missing)``.
A field's score is the largest gap, in share of events, between selection and baseline for
one of its values (0 … 1): a value that makes up 90% of the slow requests but 10% of the rest
scores 0.8. Near-unique text fields (ids) are listed last with score 0: every value is rare on
both sides, so they cannot explain a difference. The fields that define the selection are
reported apart (``in_selection``): they differ by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store.schema import EVENTS, quote_ident
from .compile import filter_sql, where_sql
from .model import Filter, TimeRange
from .parse import QueryError

if TYPE_CHECKING:
    from .engine import Store

SKIP = {"timestamp", "trace_id", "span_id", "parent_id", "meta.redacted", "attributes.overflow"}
FEW_VALUES = 24  # numeric fields with at most this many distinct values are compared by value
NEAR_UNIQUE = 0.5  # distinct / events above this: an id
MISSING = "(missing)"
DECILES = [i / 10 for i in range(1, 10)]


def breakdown(
    store: Store,
    select: list[Filter],
    filters: list[Filter],
    time: TimeRange,
    *,
    top_values: int = 5,
) -> list[dict[str, Any]]:
    if not select:
        raise QueryError("breakdown needs at least one --select to compare with the rest")
    schema = store.schema
    params: list[Any] = []
    where = where_sql(filters, time, schema, store.now, params)
    sel_params: list[Any] = []
    sel = " AND ".join(f"({filter_sql(f, schema, sel_params)})" for f in select)
    in_selection = {schema.resolve(f.field) for f in select}
    fields = [c for c, t in schema.columns.items() if c not in SKIP and t != "JSON"]
    base = (
        f"(SELECT *, coalesce(({sel}), false) AS __sel, coalesce(sample_rate, 1) AS __w "
        f"FROM {EVENTS} WHERE {where})"
    )
    base_params = [*sel_params, *params]

    # Pass 1: distinct counts, totals, baseline deciles of numeric fields.
    numeric = [c for c in fields if schema.is_numeric(c)]
    parts = ["sum(__w) FILTER (WHERE __sel)", "sum(__w) FILTER (WHERE NOT __sel)", "count(*)"]
    parts += [f"approx_count_distinct({quote_ident(c)})" for c in fields]
    parts += [
        f"quantile_disc({quote_ident(c)}, {DECILES!r}) FILTER (WHERE NOT __sel)" for c in numeric
    ]
    row = store._rows(f"SELECT {', '.join(parts)} FROM {base}", base_params)[0]
    w_sel, w_base, n = float(row[0] or 0), float(row[1] or 0), int(row[2])
    distinct = dict(zip(fields, row[3 : 3 + len(fields)], strict=True))
    deciles = dict(zip(numeric, row[3 + len(fields) :], strict=True))
    if w_sel == 0:
        raise QueryError("the selection matches no event: loosen --select or --where")

    grouped: list[tuple[str, str, list[float] | None]] = []  # (field, value expr, bin edges)
    demoted: list[str] = []
    for c in fields:
        d = int(distinct[c] or 0)
        looks_like_id = bool(n) and d > 1000 and d > NEAR_UNIQUE * n
        if looks_like_id and c not in numeric and c not in in_selection:
            demoted.append(c)
            continue
        col = quote_ident(c)
        if c in numeric and d > FEW_VALUES:
            edges = sorted({float(e) for e in (deciles[c] or []) if e is not None})
            if edges:
                bin_sql = " + ".join(f"({col} >= {e!r})::INTEGER" for e in edges)
                grouped.append((c, f"CASE WHEN {col} IS NULL THEN NULL ELSE {bin_sql} END", edges))
                continue
        grouped.append((c, f"CAST({col} AS VARCHAR)", None))

    # Pass 2: one scan, one grouping set per field.
    counts: dict[str, dict[str | None, list[float]]] = {c: {} for c, _, _ in grouped}
    if grouped:
        values = ", ".join(f"{expr} AS v{i}" for i, (_, expr, _) in enumerate(grouped))
        sets = ", ".join(f"(v{i}, __sel)" for i in range(len(grouped)))
        gid = ", ".join(f"v{i}" for i in range(len(grouped)))
        sql = (
            f"SELECT GROUPING({gid}) AS gid, {gid}, __sel, sum(__w) "
            f"FROM (SELECT {values}, __sel, __w FROM {base}) GROUP BY GROUPING SETS ({sets})"
        )
        k = len(grouped)
        for r in store._rows(sql, base_params):
            gmask = int(r[0])
            # The set's own field is the one bit that is 0 in the GROUPING() mask.
            i = next(j for j in range(k) if not (gmask >> (k - 1 - j)) & 1)
            field = grouped[i][0]
            bucket = counts[field].setdefault(r[1 + i], [0.0, 0.0])
            bucket[0 if r[1 + k] else 1] += float(r[2 + k] or 0)

    results: list[dict[str, Any]] = []
    for field, _, bins in grouped:
        rows: list[dict[str, Any]] = []
        for value, (s, b) in counts[field].items():
            sel_pct = 100.0 * s / w_sel if w_sel else 0.0
            base_pct = 100.0 * b / w_base if w_base else 0.0
            rows.append(
                {
                    "value": _label(value, bins),
                    "selection_pct": round(sel_pct, 2),
                    "baseline_pct": round(base_pct, 2),
                }
            )
        rows.sort(key=lambda v: abs(v["selection_pct"] - v["baseline_pct"]), reverse=True)
        score = abs(rows[0]["selection_pct"] - rows[0]["baseline_pct"]) / 100 if rows else 0.0
        results.append(
            {
                "field": field,
                "score": round(score, 4),
                "values": rows[:top_values],
                "in_selection": field in in_selection,
            }
        )
    results.sort(key=lambda r: (r["in_selection"], -r["score"], r["field"]))
    ranked = [r for r in results if not r["in_selection"]]
    apart = [r for r in results if r["in_selection"]]
    near_unique = [
        {"field": c, "score": 0.0, "values": [], "in_selection": False, "near_unique": True}
        for c in sorted(demoted)
    ]
    return ranked + near_unique + apart


def _label(value: Any, edges: list[float] | None) -> str:
    if value is None:
        return MISSING
    if edges is None:
        return str(value)
    i = int(value)
    if i == 0:
        return f"< {_num(edges[0])}"
    if i >= len(edges):
        return f">= {_num(edges[-1])}"
    return f"[{_num(edges[i - 1])}, {_num(edges[i])})"


def _num(x: float) -> str:
    return f"{x:.6g}"
