"""Write docs/cli.md from the commands' own --help (checked by tests/test_cli_reference.py).

.venv/bin/python scripts/cli_reference.py          # rewrite docs/cli.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from wideevents.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render() -> str:
    runner = CliRunner()
    parts = [
        "# `wideevents` command reference",
        "",
        "Generated from `--help` by `scripts/cli_reference.py`; a test fails when it is stale.",
        "",
    ]
    commands: list[list[str]] = [[]]
    assert isinstance(main, click.Group)
    commands += [[name] for name in sorted(main.commands)]
    for args in commands:
        result = runner.invoke(main, [*args, "--help"], prog_name="wideevents", terminal_width=100)
        title = " ".join(["wideevents", *args])
        parts += [f"## `{title}`", "", "```", result.output.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
