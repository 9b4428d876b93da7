"""``wideevents compare``: a canary or feature-flag verdict with an exit code to act on."""

from __future__ import annotations

import time as clock
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from ..query.compare import DEFAULT_METRICS, Thresholds, parse_metric
from ..query.compare import compare as run_compare
from ..query.engine import Store
from ..query.parse import parse_filter
from . import _output as out
from ._options import (
    DURATION,
    BadInput,
    db_option,
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one object (verdict, score, metrics); with --follow, one per evaluation.",
)
@where_option
@time_options
@click.option(
    "--baseline",
    "-b",
    "baselines",
    multiple=True,
    required=True,
    metavar="EXPR",
    help="The reference group, FIELD OP VALUE (repeatable, ANDed).",
)
@click.option(
    "--candidate",
    "-c",
    "candidates",
    multiple=True,
    required=True,
    metavar="EXPR",
    help="The group under test, FIELD OP VALUE (repeatable, ANDed); must not overlap the baseline.",
)
@click.option(
    "--metric",
    "-m",
    "metric_specs",
    multiple=True,
    metavar="SPEC",
    help="FIELD (its distribution) or rate(CONDITION), then optional worse=higher|lower|either "
    "(default higher), tolerance=5% (a distribution fails only if p50, p90 or p99 moved more; "
    "for a rate, the difference in points), weight=N (default 1). Without a tolerance, "
    "significance alone decides. Repeatable. Default: duration_ms and rate(error).",
)
@click.option(
    "--alpha",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    help="Significance over all metrics (each metric is tested at alpha / metrics).",
)
@click.option(
    "--pass",
    "pass_score",
    default=95.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Score (0-100, the weighted share of passing metrics) for a pass.",
)
@click.option(
    "--marginal",
    "marginal_score",
    default=75.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Score for marginal; below it the comparison fails.",
)
@click.option(
    "--min-events",
    default=50,
    show_default=True,
    type=click.IntRange(min=2),
    help="Stored events each group needs for a metric to be judged (else NoData).",
)
@click.option("--follow", is_flag=True, help="Re-evaluate on fresh events; exit at the first fail.")
@click.option(
    "--every", type=DURATION, default="1m", show_default=True, help="With --follow: how often."
)
@click.option(
    "--for",
    "duration",
    type=DURATION,
    default="30m",
    show_default=True,
    help="With --follow: for how long; then exit with the last verdict.",
)
@handle_errors
def compare(
    db: str,
    fmt: str,
    where: tuple[str, ...],
    since: timedelta | None,
    start: str | None,
    end: str | None,
    baselines: tuple[str, ...],
    candidates: tuple[str, ...],
    metric_specs: tuple[str, ...],
    alpha: float,
    pass_score: float,
    marginal_score: float,
    min_events: int,
    follow: bool,
    every: timedelta,
    duration: timedelta,
) -> None:
    """Is the candidate worse than the baseline? A verdict per metric, the reason, an exit code.

    Each metric is tested on the individual events of both groups (Mann-Whitney U for a
    distribution, a two-proportion z-test for a rate; weighted by sample_rate) and classed
    Pass, High, Low or NoData; the score is the weighted share of metrics that pass.

    \b
    Exit codes: 0 pass, 1 fail, 3 marginal, 4 not enough data, 2 bad usage.
    \b
      wideevents compare --baseline 'service.version = 1.4.2' \\
                         --candidate 'service.version = 1.5.0' --since 30m
      wideevents compare -b 'flag.new_checkout = off' -c 'flag.new_checkout = on' \\
                         -m duration_ms -m 'rate(http.response.status_code >= 500)'
      wideevents compare ... --follow --every 1m --for 30m
    """
    if marginal_score > pass_score:
        raise BadInput(f"--marginal {marginal_score:g} is above --pass {pass_score:g}")
    if follow and every.total_seconds() < 1:
        raise BadInput("--every must be at least 1s")
    baseline = [parse_filter(b) for b in baselines]
    candidate = [parse_filter(c) for c in candidates]
    filters = parse_wheres(where)
    time = parse_time(since, start, end)
    window = window_args(since, start, end)
    metrics = [parse_metric(m) for m in (metric_specs or DEFAULT_METRICS)]
    thresholds = Thresholds(alpha, pass_score, marginal_score, min_events)

    def evaluate() -> dict[str, Any]:
        with Store(db) as store:
            return run_compare(store, baseline, candidate, filters, time, metrics, thresholds)

    ctx = click.get_current_context()
    if not follow:
        result = evaluate()
        _show(result, fmt, db, where, baselines, candidates, window)
        ctx.exit(result["exit_code"])
    deadline = clock.monotonic() + duration.total_seconds()
    while True:
        result = evaluate()
        left = deadline - clock.monotonic()
        last = result["verdict"] == "fail" or left <= 0
        if fmt == "json":
            out.emit_json({"at": datetime.now(timezone.utc), **result})
        elif last:
            _show(result, fmt, db, where, baselines, candidates, window)
        else:
            click.echo(_one_line(result))
        if last:
            ctx.exit(result["exit_code"])
        clock.sleep(min(every.total_seconds(), left))


def _one_line(result: dict[str, Any]) -> str:
    at = datetime.now(timezone.utc).strftime("%H:%M:%S")
    classes = ", ".join(f"{m['metric']} {m['class']}" for m in result["metrics"])
    score = "-" if result["score"] is None else f"{result['score']:g}"
    return f"{at}  {result['verdict']:<8} score {score:>5}  {classes}"


def _show(
    result: dict[str, Any],
    fmt: str,
    db: str,
    where: tuple[str, ...],
    baselines: tuple[str, ...],
    candidates: tuple[str, ...],
    window: list[str],
) -> None:
    if fmt == "json":
        out.emit_json(result)
        return
    for side, exprs in (("baseline", baselines), ("candidate", candidates)):
        info = result[side]
        click.echo(f"{side + ':':<11} {' AND '.join(exprs)}   ({info['events']:,} events)")
    click.echo()
    rows = [
        {
            "metric": m["metric"],
            "class": m["class"] + (" ✗" if m["fails"] else ""),
            "baseline": _summary(m, m["baseline"]),
            "candidate": _summary(m, m["candidate"]),
            "effect": _effect(m),
            "p-value": _p(m.get("p_value")),
        }
        for m in result["metrics"]
    ]
    click.echo(out.table(rows, max_width=44))
    score = "-" if result["score"] is None else f"{result['score']:g}"
    n = len(result["metrics"])
    click.echo(
        f"\nscore {score} / 100: {result['verdict'].upper()} (pass >= {result['pass_score']:g}, "
        f"marginal >= {result['marginal_score']:g}; alpha {result['alpha']:g} over {n} "
        f"metric{'s' if n > 1 else ''})"
    )
    for m in result["metrics"]:
        if m["class"] == "NoData":
            click.echo(f"{m['metric']}: {m['reason']}")
    step: list[str] | None = None
    for m in result["metrics"]:
        why = m.get("why")
        if not why:
            continue
        click.echo(
            f"\nwhy {m['metric']} is {m['class']}: the candidate's events with {why['bad']}, "
            f"against {why['against']}"
        )
        for f in why["fields"][:5]:
            top = f["values"][0]
            click.echo(
                f"  {f['field'][:28]:<28} {str(top['value'])[:24]:<24} "
                f"candidate {top['selection_pct']:5.1f}%   baseline {top['baseline_pct']:5.1f}%"
            )
        if step is None:
            step = ["wideevents", "events"]
            for w in (*where, *candidates):
                step += ["--where", w]
            if m["kind"] == "distribution":
                step += ["--order", m["field"]]
            else:
                step += ["--where", m["condition"]]
    if step is not None:
        out.next_step(shell(with_db([*step, *window], db)))


def _summary(metric: dict[str, Any], side: dict[str, Any]) -> str:
    if metric["kind"] == "rate":
        rate = side.get("rate")
        if rate is None:
            return "-"
        of = f"{side['events']:,}"
        if side["weighted"] != side["events"]:
            of += f" (~{side['weighted']:,.0f})"  # stored (and weighted) events
        return f"{100 * rate:.2f}%  of {of}"
    parts = [f"{name} {_num(side.get(name))}" for name in ("p50", "p90", "p99")]
    return " · ".join(parts)


def _effect(metric: dict[str, Any]) -> str:
    if metric["class"] == "NoData":
        return "-"
    if metric["kind"] == "rate":
        return f"{100 * metric['difference']:+.2f} pts"
    shifts = metric["shift"]
    # The shift that made the class: the largest rise for High, the largest fall for Low.
    sign = {"High": 1, "Low": -1}.get(metric["class"])
    name = max(
        (k for k in shifts if shifts[k] is not None),
        key=lambda k: abs(shifts[k]) if sign is None else sign * shifts[k],
        default=None,
    )
    shift = "" if name is None else f"{name} {100 * shifts[name]:+.1f}% · "
    return f"{shift}r {metric['rank_biserial']:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<1e-16" if value < 1e-16 else f"{value:.2g}"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
