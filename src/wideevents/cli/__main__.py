"""``python -m wideevents.cli`` runs the ``wideevents`` command."""

from . import main

main(prog_name="wideevents")
