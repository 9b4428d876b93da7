"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..store.paths import default_db_path

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        default=default_db_path,
        show_default="WIDEEVENTS_DB or ./wideevents.duckdb",
        type=click.Path(dir_okay=False),
        help="The store's DuckDB file.",
    )(func)


class Duration(timedelta):
    """A timedelta that remembers how it was typed (``7d``), for messages."""

    text: str


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
        from ..query.parse import QueryError, parse_duration

        try:
            parsed = parse_duration(str(value))
        except QueryError as exc:
            self.fail(exc.message, param, ctx)
        out = Duration(seconds=parsed.total_seconds())
        out.text = str(value).strip()
        return out


DURATION = DurationType()


class BadInput(click.ClickException):
    """A malformed flag or expression: ``Error: …`` and exit 2, never a traceback."""

    exit_code = 2


def handle_errors(func: F) -> F:
    """Library errors become ``Error: …``: exit 2 for bad input, 1 for runtime failures."""
    import functools

    import duckdb

    from ..query.parse import QueryError
    from ..store.paths import StoreLocked

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.exceptions.Exit:
            raise  # an exit code chosen by the command (a RuntimeError to click)
        except QueryError as exc:
            raise BadInput(str(exc)) from None
        except (StoreLocked, duckdb.Error, OSError, RuntimeError) as exc:
            raise click.ClickException(str(exc).strip()) from None

    return run  # type: ignore[return-value]


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="json: a JSON array of objects and nothing else.",
    )(func)


def where_option(func: F) -> F:
    return click.option(
        "--where",
        "-w",
        "where",
        multiple=True,
        metavar="EXPR",
        help="FIELD OP VALUE, repeatable (ANDed). OP: = != > >= < <= contains !contains "
        "starts-with in not-in exists !exists. Example: 'http.response.status_code >= 500'.",
    )(func)


def time_options(func: F) -> F:
    func = click.option(
        "--to", "end", default=None, metavar="TIME", help="Only events before this ISO time."
    )(func)
    func = click.option(
        "--from", "start", default=None, metavar="TIME", help="Only events from this ISO time on."
    )(func)
    return click.option("--since", type=DURATION, default=None, help="Only the last 15m, 1h, 7d …")(
        func
    )


def parse_time(since: timedelta | None, start: str | None, end: str | None) -> Any:
    from ..query.model import TimeRange
    from ..query.parse import QueryError
    from ..query.parse import parse_time as when

    try:
        first = None if start is None else when(start, "--from")
        last = None if end is None else when(end, "--to")
    except QueryError as exc:
        raise BadInput(exc.message) from None
    if first is not None and last is not None and first >= last:
        raise BadInput(f"--from {start} is not before --to {end}")
    return TimeRange(since=since, start=first, end=last)


def parse_wheres(where: tuple[str, ...]) -> list[Any]:
    from ..query.parse import parse_filter

    return [parse_filter(w) for w in where]


def shell(args: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in args)


def window_args(since: timedelta | None, start: str | None, end: str | None) -> list[str]:
    """The time window a command was given, as options for a command it suggests: the next
    step looks at the same events."""
    args: list[str] = []
    if since is not None:
        args += ["--since", getattr(since, "text", None) or f"{round(since.total_seconds())}s"]
    if start is not None:
        args += ["--from", start]
    if end is not None:
        args += ["--to", end]
    return args


def with_db(args: list[str], db: str) -> list[str]:
    """Add ``--db`` to a suggested command unless it is the default store."""
    return args if db == default_db_path() else [*args, "--db", db]
