"""Store upkeep: ``ingest``, ``prune`` and ``export``."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import click
import duckdb

from ..query.engine import Store
from ..store.ingest import ingest_store
from ..store.paths import StoreLocked, private_umask
from ..store.schema import EVENTS, quote_literal
from ._options import DURATION, db_option, handle_errors


@click.command()
@db_option
@click.option("--follow", is_flag=True, help="Keep ingesting as segments arrive (Ctrl-C stops).")
@click.option(
    "--interval", default=1.0, show_default=True, help="Seconds between runs with --follow."
)
def ingest(db: str, follow: bool, interval: float) -> None:
    """Move spooled events into the store now.

    Queries ingest before they read, and an app's DuckDB sink starts a background ingester
    once 64 MiB wait or the oldest waiting segment is a minute old, so this is for keeping
    the spool empty from a separate process (`--follow`), away from the app.
    """
    os.umask(0o077)
    while True:
        try:
            result = ingest_store(db, lock_timeout=30.0)
        except StoreLocked as exc:
            raise click.ClickException(str(exc)) from None
        except duckdb.Error as exc:
            raise click.ClickException(f"ingest failed: {exc}") from None
        if result is not None and (result.rows or not follow):
            click.echo(f"ingested {result.rows} events from {result.segments} segments")
        if result is not None and result.bad:
            click.echo(f"set aside unreadable segments: {', '.join(result.bad)}", err=True)
        if not follow:
            return
        time.sleep(interval)


@click.command()
@db_option
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    required=True,
    help="Delete events whose timestamp is older than this (7d, 12h …).",
)
@handle_errors
def prune(db: str, older_than: timedelta) -> None:
    """Delete old events (retention); their pages are reused by later events."""
    with Store(db) as store:
        assert store.con is not None
        ((deleted,),) = store.con.execute(
            f"DELETE FROM {EVENTS} WHERE timestamp < now() - to_seconds(?::DOUBLE)",
            [older_than.total_seconds()],
        ).fetchall()
        store.con.execute("CHECKPOINT")
    click.echo(f"deleted {deleted} events older than {getattr(older_than, 'text', older_than)}")


@click.command()
@db_option
@click.option(
    "--parquet",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for hive-partitioned Parquet (date=YYYY-MM-DD/…), zstd.",
)
@handle_errors
def export(db: str, directory: str) -> None:
    """Export the store as Parquet partitioned by date, for DuckDB, ClickHouse, Spark …"""
    target = Path(directory).resolve()
    with Store(db) as store:
        assert store.con is not None
        with private_umask():
            store.con.execute(
                f"COPY (SELECT *, strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%d') AS date "
                f"FROM {EVENTS}) TO {quote_literal(str(target))} "
                "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE)"
            )
        ((rows,),) = store.con.execute(f"SELECT count(*) FROM {EVENTS}").fetchall()
    click.echo(f"exported {rows} events to {target}")
