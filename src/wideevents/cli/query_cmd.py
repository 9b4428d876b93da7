"""``wideevents query``: aggregates, grouped and over time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from ..query.engine import Store
from ..query.model import PERCENTILES, Filter, Query
from ..query.parse import parse_calc, parse_having, parse_order
from . import _output as out
from ._options import (
    DURATION,
    db_option,
    format_option,
    handle_errors,
    parse_time,
    parse_wheres,
    shell,
    time_options,
    where_option,
    window_args,
    with_db,
)


@click.command()
@db_option
@format_option
@where_option
@time_options
@click.option(
    "--calc",
    "-c",
    "calcs",
    multiple=True,
    metavar="CALC",
    help="count, count_distinct(F), sum|avg|min|max(F), p50|p75|p90|p95|p99|p999(F), "
    "heatmap(F). Repeatable; default count.",
)
@click.option("--group-by", "-g", "group_by", multiple=True, metavar="FIELD", help="Repeatable.")
@click.option(
    "--granularity",
    type=DURATION,
    default=None,
    help="A time series: one row per bucket of this size (1m, 5m, 1h …).",
)
@click.option(
    "--order",
    "orders",
    multiple=True,
    metavar="KEY [asc|desc]",
    help="A calc as written or a group-by field. Default: the first calc, descending.",
)
@click.option(
    "--having",
    "havings",
    multiple=True,
    metavar="CALC OP NUMBER",
    help="Keep groups whose calc passes, for example 'count > 100'.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@handle_errors
def query(
    db: str,
    fmt: str,
    where: tuple[str, ...],
    since: timedelta | None,
    start: str | None,
    end: str | None,
    calcs: tuple[str, ...],
    group_by: tuple[str, ...],
    granularity: timedelta | None,
    orders: tuple[str, ...],
    havings: tuple[str, ...],
    limit: int,
) -> None:
    """Aggregate events: 'p99 by route', error counts over time, top users.

    \b
      wideevents query -c count -c 'p99(duration_ms)' -g http.route --since 1h
      wideevents query -c 'heatmap(duration_ms)' --granularity 5m --since 2h
    """
    q = Query(
        calcs=[parse_calc(c) for c in calcs] or [parse_calc("count")],
        filters=parse_wheres(where),
        group_by=list(group_by),
        orders=[parse_order(o) for o in orders],
        havings=[parse_having(h) for h in havings],
        limit=limit,
        time=parse_time(since, start, end),
        granularity=granularity,
    )
    with Store(db) as store:
        rows = store.query(q)
    if fmt == "json":
        out.emit_json(rows)
        return
    flat = [{k: (v["counts"] if isinstance(v, dict) else v) for k, v in r.items()} for r in rows]
    if fmt == "csv":
        out.emit_csv(flat)
        return
    heat = [c for c in q.calcs if c.op == "heatmap"]
    if heat and q.granularity is not None and rows:
        label = heat[0].label
        click.echo(f"{label} over time (darker: more events)")
        click.echo(
            out.heatmap(
                [r.get("time") for r in rows],
                [r[label]["counts"] for r in rows],
                rows[0][label]["edges"],
            )
        )
    else:
        shown = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows]
        if q.granularity is not None and rows and out.is_tty():
            for c in q.calcs:
                if c.op != "heatmap":
                    series = [r.get(c.label) for r in rows]
                    click.echo(f"{c.label:>24}  {out.sparkline(series)}")
            click.echo()
        click.echo(out.table(shown) if shown else "no events match")
    step = _next(q, rows, db, window_args(since, start, end))
    if step is not None:
        out.next_step(step)


def _next(q: Query, rows: list[dict[str, Any]], db: str, window: list[str]) -> str | None:
    """From an aggregate to 'what is different about these': a breakdown command.

    With a percentile: the worst group's slow events against the rest of that group. With a
    group-by alone: the biggest group against the others. Nothing to suggest otherwise.
    """
    args = ["wideevents", "breakdown"]
    for f in q.filters:
        args += ["--where", str(f)]
    pct = next((c for c in q.calcs if c.op in PERCENTILES and c.field), None)
    groups = [g for g in ([*q.group_by] if rows else []) if g in rows[0]]
    if pct is not None:
        valued = [r for r in rows if r.get(pct.label) is not None]
        if not valued:
            return None
        top = max(valued, key=lambda r: r[pct.label])
        for g in groups:
            args += ["--where", value_filter(g, top[g])]
        args += ["--select", f"{pct.field} >= {top[pct.label]:.6g}"]
    elif groups:
        args += ["--select", value_filter(groups[0], rows[0][groups[0]])]
    else:
        return None
    return shell(with_db([*args, *window], db))


def value_filter(field: str, value: Any) -> str:
    """A ``--where`` for one value as the CLI prints it: ``x !exists`` for a missing one."""
    if value is None:
        return str(Filter(field, "!exists"))
    if isinstance(value, bool):
        value = "true" if value else "false"
    return str(Filter(field, "=", (value,)))
