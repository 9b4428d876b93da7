"""Printing results: aligned tables (with small pictures on a terminal), JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from ..query.request import jsonable

SPARKS = "▁▂▃▄▅▆▇█"
SHADES = " ░▒▓█"


def is_tty() -> bool:
    return sys.stdout.isatty()


def emit_json(rows: Any) -> None:
    click.echo(json.dumps(jsonable(rows), ensure_ascii=False, indent=None))


def emit_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    cols = list(columns or _columns(rows))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow([_cell(r.get(c), csv_mode=True) for c in cols])
    click.echo(buf.getvalue(), nl=False)


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def _cell(value: Any, *, csv_mode: bool = False) -> str:
    if value is None:
        return "" if csv_mode else "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if csv_mode:
            return repr(value)
        if abs(value) >= 1e15 or (value != 0 and abs(value) < 1e-3):
            return f"{value:.3g}"
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return str(value) if csv_mode else f"{value:,}"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dict, list)):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return str(value)


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, max_width: int = 60
) -> str:
    cols = list(columns or _columns(rows))
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    numeric = [
        all(
            (isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool))
            or r.get(c) is None
            for r in rows
        )
        for c in cols
    ]

    def line(values: Sequence[str]) -> str:
        out = []
        for v, w, num in zip(values, widths, numeric, strict=True):
            out.append(v.rjust(w) if num else v.ljust(w))
        return "  ".join(out).rstrip()

    head = line(cols)
    rule = "  ".join("─" * w for w in widths)
    return "\n".join([head, rule, *(line(row) for row in cells)])


def sparkline(values: Sequence[float | None]) -> str:
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = hi - lo or 1.0
    return "".join(
        " "
        if v is None
        else SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * (len(SPARKS) - 1) + 0.5))]
        for v in values
    )


def bar(pct: float, width: int = 20, char: str = "█") -> str:
    n = max(0, min(width, round(pct / 100 * width)))
    return char * n + "·" * (width - n)


def heatmap(
    times: Sequence[Any], columns: Sequence[Sequence[float]], edges: Sequence[float]
) -> str:
    """Rows are value buckets (high at the top), columns are time buckets; shade = count."""
    top = max((max(c) for c in columns if c), default=0) or 1
    lines = []
    for b in range(len(edges) - 2, -1, -1):
        cells = []
        for col in columns:
            v = col[b] if b < len(col) else 0
            level = 0 if v <= 0 else 1 + int(math.log1p(v) / math.log1p(top) * (len(SHADES) - 2))
            cells.append(SHADES[min(level, len(SHADES) - 1)])
        lines.append(f"{_axis(edges[b + 1]):>10} │{''.join(cells)}")
    lines.append(f"{_axis(edges[0]):>10} └{'─' * len(columns)}")
    if times:
        first, last = _cell(times[0]), _cell(times[-1])
        lines.append(" " * 12 + first + (" … " + last if len(times) > 1 else ""))
    return "\n".join(lines)


def _axis(value: float) -> str:
    """A heatmap axis label: four significant digits, thousands separated."""
    v = float(f"{float(value):.4g}")
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def next_step(command: str) -> None:
    """The drill-down to run next, at the end of a table."""
    click.echo(f"\nnext: {command}")
