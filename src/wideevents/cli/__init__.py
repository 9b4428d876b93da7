"""The ``wideevents`` command: one click group, a module per command."""

from __future__ import annotations

import click

from .._version import __version__
from .compare_cmd import compare
from .demo_cmd import demo
from .drill_cmds import breakdown, events, fields, sql, trace
from .query_cmd import query
from .serve_cmd import serve
from .store_commands import export, ingest, prune


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wideevents")
def main() -> None:
    """Query wide events: from an aggregate, to what is different, to one trace.

    \b
      wideevents query -c count -c 'p99(duration_ms)' -g http.route --since 1h
      wideevents breakdown --select 'duration_ms >= 1200' --since 1h
      wideevents events --where 'build = 2026.11.3' --order duration_ms
      wideevents trace TRACE_ID

    Every command takes --db PATH (default: WIDEEVENTS_DB or ./wideevents.duckdb).
    """


for command in (query, breakdown, events, trace, fields, sql, compare, demo):
    main.add_command(command)
main.add_command(ingest)
main.add_command(prune)
main.add_command(export)
main.add_command(serve)
