"""Breakdown (BubbleUp): what is different about the selected events, field by field.

The selection (``--select`` filters, ANDed) is compared with the baseline (the other events
that pass ``--where``) across every field, in two scans of the data:

1. one aggregate pass over a sample: each field's approximate distinct count, and for numeric
   fields the baseline's deciles, which become the bins;
2. one ``GROUPING SETS`` pass: Σ sample_rate per (field value or bin, in selection or not),
   over every event of each side, or a repeatable random sample of a side past a million.

Strings, booleans and numbers with few distinct values (status codes, shard ids) are compared
value by value, other numbers on the baseline's decile bins, a missing value as ``(missing)``.
A field's score is the largest gap, in share of events, between selection and baseline for
one of its values (0 … 1): a value that makes up 90% of the slow requests but 10% of the rest
scores 0.8. Near-unique text fields (ids) are listed last with score 0: every value is rare on
both sides, so they cannot explain a difference. The fields that define the selection are
reported apart (``in_selection``): they differ by construction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store.schema import EVENTS, quote_ident
from .compile import all_of_sql, where_sql
from .model import Filter, TimeRange
from .parse import QueryError

if TYPE_CHECKING:
    from .engine import Store

SKIP = {"timestamp", "trace_id", "span_id", "parent_id", "meta.redacted", "attributes.overflow"}
FEW_VALUES = 24  # numeric fields with at most this many distinct values are compared by value
NEAR_UNIQUE = 0.5  # distinct / events above this: an id
MISSING = "(missing)"
DECILES = [i / 10 for i in range(1, 10)]
GROUPS_PER_SCAN = 60
PROFILE_ROWS = 200_000  # rows that decide each field's kind and bins
SIDE_ROWS = 1_000_000  # rows per side (selection, baseline) that are compared


def _sample(rows: int, wanted: int) -> str:
    """A condition keeping a repeatable random ~*wanted* of *rows* (by a hash of the row id,
    so the scan skips the others before computing anything), or ``true``."""
    if rows <= wanted:
        return "true"
    return f"__h < {int(_BUCKETS * wanted / rows) + 1}"


_BUCKETS = 1 << 20


def breakdown(
    store: Store,
    select: list[Filter],
    filters: list[Filter],
    time: TimeRange,
    *,
    baseline: list[Filter] | None = None,
    top_values: int = 5,
) -> list[dict[str, Any]]:
    """Rank every field by how differently its values are spread in selection and baseline.

    Small stores are compared exactly. Past :data:`SIDE_ROWS` events on a side, that side is
    a repeatable random sample of that many (shares within a side barely move; the exact
    ranking of the planted-cause benchmark is unchanged), so a breakdown over ten million
    events takes about a second.

    With *baseline* filters, the baseline is the events that pass them (and *filters*), not
    all the rest: a canary's slow requests against the stable build's slow requests.
    """
    if not select:
        raise QueryError("breakdown needs at least one --select to compare with the rest")
    schema = store.schema
    params: list[Any] = []
    where = where_sql(filters, time, schema, store.now, params)
    sel_params: list[Any] = []
    sel = all_of_sql(select, schema, sel_params)
    in_selection = {schema.resolve(f.field) for f in select}
    if baseline is not None:
        chosen = all_of_sql(select, schema, params)
        where = f"({where}) AND ({chosen} OR {all_of_sql(baseline, schema, params)})"
        in_selection |= {schema.resolve(f.field) for f in baseline}
    fields = [c for c, t in schema.columns.items() if c not in SKIP and t != "JSON"]
    numeric = [c for c in fields if schema.is_numeric(c)]

    def events_sql(tablesample: str = "") -> str:
        return (
            f"(SELECT *, {sel} AS __sel, coalesce(sample_rate, 1) AS __w, "
            f"hash(rowid) % {_BUCKETS} AS __h FROM {EVENTS}{tablesample} WHERE {where})"
        )

    base = events_sql()
    base_params = [*sel_params, *params]

    # Sizes of both sides, exactly (one cheap scan).
    ((n_sel, n_base),) = store._rows(
        f"SELECT count(*) FILTER (WHERE __sel), count(*) FILTER (WHERE NOT __sel) FROM {base}",
        base_params,
    )
    n_sel, n_base = int(n_sel or 0), int(n_base or 0)
    if n_sel == 0:
        raise QueryError("the selection matches no event: loosen --select or --where")

    # Pass 1, on a sample: each field's distinct count, and the baseline's deciles.
    profile_rows = n_sel + n_base
    parts = ["count(*)"]
    parts += [f"approx_count_distinct({quote_ident(c)})" for c in fields]
    parts += [
        f"quantile_disc({quote_ident(c)}, {DECILES!r}) FILTER (WHERE NOT __sel OR {n_base} = 0)"
        for c in numeric
    ]
    # Whole vectors are skipped at the scan (system sampling): bins and distinct ratios do not
    # need every row, and this pass reads every column.
    profile = base
    if profile_rows > PROFILE_ROWS:
        pct = 100.0 * PROFILE_ROWS / profile_rows
        profile = events_sql(f" TABLESAMPLE {pct:.4f}% (system, 42)")
    row = store._rows(f"SELECT {', '.join(parts)} FROM {profile}", base_params)[0]
    n = int(row[0])
    distinct = dict(zip(fields, row[1 : 1 + len(fields)], strict=True))
    deciles = dict(zip(numeric, row[1 + len(fields) :], strict=True))

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
        grouped.append((c, col, None))

    # Pass 2: one scan of both sides (each sampled when large), one grouping set per field;
    # DuckDB's GROUPING() takes at most 64 columns, so wider stores take a scan per 60 fields.
    counts: dict[str, dict[Any, list[float]]] = {c: {} for c, _, _ in grouped}
    totals: dict[str, list[float]] = {c: [0.0, 0.0] for c, _, _ in grouped}
    keep = f"CASE WHEN __sel THEN {_sample(n_sel, SIDE_ROWS)} ELSE {_sample(n_base, SIDE_ROWS)} END"
    for start in range(0, len(grouped), GROUPS_PER_SCAN):
        chunk = grouped[start : start + GROUPS_PER_SCAN]
        values = ", ".join(f"{expr} AS v{i}" for i, (_, expr, _) in enumerate(chunk))
        sides = f"SELECT {values}, __sel, __w FROM {base} WHERE {keep}"
        sets = ", ".join(f"(v{i}, __sel)" for i in range(len(chunk)))
        gid = ", ".join(f"v{i}" for i in range(len(chunk)))
        sql = (
            f"SELECT GROUPING({gid}) AS gid, {gid}, __sel, sum(__w) "
            f"FROM ({sides}) GROUP BY GROUPING SETS ({sets})"
        )
        k = len(chunk)
        for r in store._rows(sql, base_params):
            gmask = int(r[0])
            # The set's own field is the one bit that is 0 in the GROUPING() mask.
            i = next(j for j in range(k) if not (gmask >> (k - 1 - j)) & 1)
            field = chunk[i][0]
            side = 0 if r[1 + k] else 1
            weight = float(r[2 + k] or 0)
            counts[field].setdefault(r[1 + i], [0.0, 0.0])[side] += weight
            totals[field][side] += weight

    results: list[dict[str, Any]] = []
    for field, _, bins in grouped:
        rows: list[dict[str, Any]] = []
        w_sel, w_base = totals[field]
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
        # Over-represented in the selection first (what the selected events have more of),
        # ties by value, so the same data always prints the same way.
        rows.sort(key=lambda v: (v["baseline_pct"] - v["selection_pct"], v["value"]))
        gaps = [abs(v["selection_pct"] - v["baseline_pct"]) for v in rows]
        score = max(gaps) / 100 if gaps else 0.0
        results.append(
            {
                "field": field,
                "score": round(score, 4),
                "values": rows[:top_values],
                "in_selection": field in in_selection,
                "binned": bins is not None,
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
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)
    i = int(value)
    if i == 0:
        return f"< {_num(edges[0])}"
    if i >= len(edges):
        return f">= {_num(edges[-1])}"
    return f"[{_num(edges[i - 1])}, {_num(edges[i])})"


def _num(x: float) -> str:
    return f"{x:.6g}"
