"""The UI shipped in the package is what `make ui` builds from ui/ (nobody edits the output)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "ui"
STATIC = ROOT / "src" / "wideevents" / "serve" / "static"


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not on PATH")
def test_the_committed_build_matches_the_ui_sources(tmp_path: Path) -> None:
    if not (UI / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=UI, check=True, timeout=300)
    out = tmp_path / "static"
    subprocess.run(
        [
            "npx",
            "--no-install",
            "vite",
            "build",
            "--outDir",
            str(out),
            "--emptyOutDir",
            "--logLevel",
            "error",
        ],
        cwd=UI,
        check=True,
        timeout=300,
    )
    built = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    shipped = {p.relative_to(STATIC): p.read_bytes() for p in STATIC.rglob("*") if p.is_file()}
    assert sorted(built) == sorted(shipped), "run `make ui` and commit src/wideevents/serve/static"
    for name, data in built.items():
        assert shipped[name] == data, f"{name} differs: run `make ui` and commit the output"
