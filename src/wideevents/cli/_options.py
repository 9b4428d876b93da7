"""Options shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..store.paths import default_db_path

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        default=default_db_path,
        show_default="WIDEEVENTS_DB or ./wideevents.duckdb",
        type=click.Path(dir_okay=False),
        help="The store's DuckDB file.",
    )(func)


if TYPE_CHECKING:
    _ParamType = click.ParamType[timedelta]
else:  # click < 8.2 has no generic ParamType at run time
    _ParamType = click.ParamType


class DurationType(_ParamType):
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a duration such as 90s, 15m, 1h, 7d or 2w", param, ctx)
        return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


DURATION = DurationType()
