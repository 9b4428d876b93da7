from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Internal failures raise under the project's own tests instead of being counted and logged.
os.environ["WIDEEVENTS_RAISE_INTERNAL"] = "1"
for _name in list(os.environ):
    if _name.startswith(("WIDEEVENTS_", "OTEL_")) and _name != "WIDEEVENTS_RAISE_INTERNAL":
        del os.environ[_name]

import wideevents  # noqa: E402
from wideevents import _internal  # noqa: E402
from wideevents.sinks import MemorySink  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_sdk(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with an unconfigured default client, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    wideevents.shutdown()
    _internal.reset()
    yield
    wideevents.shutdown()
    _internal.reset()


@pytest.fixture
def memory() -> MemorySink:
    """The default client configured with one memory sink and default redaction."""
    sink = MemorySink()
    wideevents.configure("test-service", sinks=[sink])
    return sink
