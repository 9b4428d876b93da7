import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_help() -> None:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts/cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is stale: run .venv/bin/python scripts/cli_reference.py"
