"""``breakdown``, ``events``, ``trace``, ``fields`` and ``sql``: the drill-down after a query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from ..query.breakdown import breakdown as run_breakdown
from ..query.engine import Store, run_sql
from ..query.model import Filter
from ..query.parse import parse_filter
from . import _output as out
from ._options import (
    BadInput,
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
    "--select",
    "-s",
    "selects",
    multiple=True,
    required=True,
    metavar="EXPR",
    help="The events to explain, FIELD OP VALUE (repeatable, ANDed); the rest of "
    "the --where events are the baseline.",
)
@click.option(
    "--values",
    "top_values",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Values shown per field.",
)
@click.option(
    "--limit",
    default=15,
    show_default=True,
    type=click.IntRange(min=1),
    help="Fields shown in the table (json has them all).",
)
@handle_errors
def breakdown(
    db: str,
    fmt: str,
    where: tuple[str, ...],
    since: timedelta | None,
    start: str | None,
    end: str | None,
    selects: tuple[str, ...],
    top_values: int,
    limit: int,
) -> None:
    """What is different about the selected events, across every field, ranked.

    \b
      wideevents breakdown --select 'duration_ms >= 1200' --since 1h
    """
    select = [parse_filter(s) for s in selects]
    filters = parse_wheres(where)
    time = parse_time(since, start, end)
    with Store(db) as store:
        results = run_breakdown(store, select, filters, time, top_values=top_values)
    if fmt == "json":
        out.emit_json(results)
        return
    if fmt == "csv":
        out.emit_csv(
            [{"field": r["field"], "score": r["score"], **v} for r in results for v in r["values"]]
        )
        return
    ranked = [
        r
        for r in results
        if not r["in_selection"] and not r.get("near_unique") and r["score"] >= 0.005
    ]
    click.echo(
        f"selection: {' AND '.join(selects)}   vs   baseline: the other events"
        + (f" where {' AND '.join(where)}" if where else "")
    )
    click.echo("score: the largest gap in share of events for one value (0-1)\n")
    for r in ranked[:limit]:
        click.echo(f"{r['field']}  score {r['score']:.2f}")
        for v in r["values"][:3]:
            click.echo(
                f"  {str(v['value'])[:28]:<28} sel {out.bar(v['selection_pct'], 16)} "
                f"{v['selection_pct']:5.1f}%   base {out.bar(v['baseline_pct'], 16, '▒')} "
                f"{v['baseline_pct']:5.1f}%"
            )
    apart = [r["field"] for r in results if r["in_selection"]]
    unique = [r["field"] for r in results if r.get("near_unique")]
    if apart:
        click.echo(f"\ndefine the selection (differ by construction): {', '.join(apart)}")
    if unique:
        click.echo(f"near-unique, not compared: {', '.join(unique)}")
    step = _drill_filter(ranked)
    if step is not None:
        args = ["wideevents", "events"]
        for w in (*where, *selects):
            args += ["--where", w]
        args += ["--where", step, "--order", "duration_ms", *window_args(since, start, end)]
        out.next_step(shell(with_db(args, db)))


def _drill_filter(ranked: list[dict[str, Any]]) -> str | None:
    """A filter for the value that best explains the selection: the first ranked field whose
    top value is over-represented in it (a bin is no filter to type)."""
    for r in ranked:
        if r.get("binned") or not r["values"]:
            continue
        top = r["values"][0]
        if top["selection_pct"] <= top["baseline_pct"]:
            continue
        if top["value"] == "(missing)":
            return str(Filter(r["field"], "!exists"))
        return str(Filter(r["field"], "=", (top["value"],)))
    return None


@click.command()
@db_option
@format_option
@where_option
@time_options
@click.option(
    "--order",
    default="timestamp",
    show_default=True,
    metavar="FIELD",
    help="Sort by this field, descending (use --asc to reverse).",
)
@click.option("--asc", is_flag=True, help="Ascending order.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--columns",
    default=None,
    metavar="F1,F2",
    help="Fields to show in the table (json shows every field).",
)
@handle_errors
def events(
    db: str,
    fmt: str,
    where: tuple[str, ...],
    since: timedelta | None,
    start: str | None,
    end: str | None,
    order: str,
    asc: bool,
    limit: int,
    columns: str | None,
) -> None:
    """The individual events behind an aggregate: newest first, or slowest with --order.

    \b
      wideevents events --where 'http.route = /checkout' --order duration_ms --limit 5
    """
    filters = parse_wheres(where)
    time = parse_time(since, start, end)
    with Store(db) as store:
        rows = store.events(filters, time, order=order, descending=not asc, limit=limit)
        # Unknown names: Error, exit 2, with close names.
        named = [store.schema.resolve(c.strip()) for c in columns.split(",")] if columns else None
    if fmt == "json":
        out.emit_json(rows)
        return
    chosen = named if named is not None else _default_columns(rows)
    if fmt == "csv":
        out.emit_csv(rows, named)
        return
    click.echo(out.table(rows, chosen) if rows else "no events match")
    if rows and rows[0].get("trace_id"):
        out.next_step(shell(with_db(["wideevents", "trace", str(rows[0]["trace_id"])], db)))


def _default_columns(rows: list[dict[str, Any]]) -> list[str]:
    first = ["timestamp", "name", "duration_ms", "error"]
    skip = {
        "span_id",
        "parent_id",
        "sample_rate",
        "host.name",
        "process.pid",
        "meta.redacted",
        "service.version",
        "deployment.environment.name",
        "error.message",
    }
    seen: list[str] = [c for c in first if any(c in r for r in rows)]
    for r in rows:
        for k in r:
            if k not in seen and k not in skip and k != "trace_id":
                seen.append(k)
    return [*seen[:9], "trace_id"]


@click.command()
@db_option
@format_option
@click.argument("trace_id")
@handle_errors
def trace(db: str, fmt: str, trace_id: str) -> None:
    """One trace as a tree and a waterfall."""
    if len(trace_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise BadInput(f"{trace_id!r} is not a trace id (32 hex digits)")
    with Store(db) as store:
        rows = store.trace(trace_id)
    if not rows:
        raise click.ClickException(f"no events in trace {trace_id!r}")
    if fmt == "json":
        out.emit_json(rows)
        return
    if fmt == "csv":
        out.emit_csv(rows)
        return
    starts = [r["timestamp"] for r in rows]
    t0 = min(starts)
    end = max(r["timestamp"] + timedelta(milliseconds=r.get("duration_ms") or 0) for r in rows)
    total_ms = max((end - t0).total_seconds() * 1000, 1e-3)
    width = 40
    click.echo(f"trace {trace_id}  {len(rows)} events  {total_ms:.1f} ms\n")
    for r in rows:
        offset = (r["timestamp"] - t0).total_seconds() * 1000
        dur = r.get("duration_ms") or 0.0
        a = int(offset / total_ms * width)
        b = max(a + 1, int((offset + dur) / total_ms * width))
        lane = " " * a + ("█" if not r.get("error") else "▓") * (b - a)
        label = ("  " * r["depth"] + str(r.get("name")))[:36]
        err = "  ERROR " + str(r.get("error.type", "")) if r.get("error") else ""
        click.echo(f"{label:<36} {lane:<{width}} {dur:9.2f} ms{err}")


@click.command()
@db_option
@format_option
@handle_errors
def fields(db: str, fmt: str) -> None:
    """The schema: each field's type, distinct values (approximate) and share of nulls."""
    with Store(db) as store:
        rows = store.fields()
    if fmt == "json":
        out.emit_json(rows)
    elif fmt == "csv":
        out.emit_csv(rows)
    else:
        click.echo(out.table(rows, ["name", "type", "distinct", "null_pct"]))


@click.command()
@db_option
@format_option
@click.argument("statement")
@handle_errors
def sql(db: str, fmt: str, statement: str) -> None:
    """Run SQL against the store (the table is `events`): read-only, no other files."""
    names, rows = run_sql(db, statement)
    dicts = [dict(zip(names, r, strict=True)) for r in rows]
    if fmt == "json":
        out.emit_json(dicts)
    elif fmt == "csv":
        out.emit_csv(dicts, names)
    else:
        click.echo(out.table(dicts, names) if dicts else "(no rows)")
