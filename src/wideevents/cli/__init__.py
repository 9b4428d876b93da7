"""The ``wideevents`` command: one click group, a module per command."""

from __future__ import annotations

import click

from .._version import __version__
from .store_commands import export, ingest, prune


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wideevents")
def main() -> None:
    """Wide events: store upkeep now; the query commands arrive with the query layer.

    Every command takes --db PATH (default: WIDEEVENTS_DB or ./wideevents.duckdb).
    """


main.add_command(ingest)
main.add_command(prune)
main.add_command(export)
