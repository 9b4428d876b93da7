"""The pytest fixture ``captured_events``: the events a test's code emitted.

Registered through the ``pytest11`` entry point, so it is available once wideevents is
installed::

    def test_signup(captured_events):
        signup("ada@example.com")
        assert captured_events.one("signup")["user.plan"] == "free"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import CapturedEvents, capture


@pytest.fixture
def captured_events() -> Iterator[CapturedEvents]:
    """Every event the default client emits during the test, as final records."""
    with capture() as events:
        yield events
