"""Assert on the events your code emits.

    from wideevents.testing import capture

    def test_checkout_emits_one_event():
        with capture() as events:
            checkout(cart)
        (ev,) = events.named("checkout")
        assert ev["cart.items"] == 3
        assert ev["error"] is False

Inside ``capture()`` the default client's events are processed synchronously (each one is
sampled, redacted and recorded as soon as it ends) into a list of the final records, exactly
what a sink would receive. With pytest, the ``captured_events`` fixture does the same for a
whole test (``pip install wideevents`` registers it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from . import _event as _event_module
from ._client import DEFAULT, WideEvents
from ._config import build_config
from ._event import Event
from ._pipeline import Pipeline
from ._redact import Redaction
from .sampling import Rule
from .sinks import MemorySink

__all__ = ["CapturedEvents", "SimulatedClock", "capture", "simulated_clock"]


class CapturedEvents(list[dict[str, Any]]):
    """The records captured so far, in the order the events ended."""

    def named(self, name: str) -> list[dict[str, Any]]:
        """The records of events called *name*."""
        return [r for r in self if r.get("name") == name]

    def one(self, name: str) -> dict[str, Any]:
        """The single record called *name*; AssertionError when there are none or several."""
        found = self.named(name)
        if len(found) != 1:
            names = sorted({str(r.get("name")) for r in self})
            raise AssertionError(f"expected one event {name!r}, got {len(found)} (seen: {names})")
        return found[0]


class _SyncPipeline(Pipeline):
    def submit(self, ev: Event) -> None:
        self.queue.append(ev)
        self.flush()


class _ListSink(MemorySink):
    def __init__(self, events: CapturedEvents) -> None:
        super().__init__()
        self.events = events


@contextmanager
def capture(
    client: WideEvents = DEFAULT,
    *,
    redact: bool | Redaction = True,
    sample: int | Sequence[Rule] | None = None,
) -> Iterator[CapturedEvents]:
    """Record the events *client* emits inside the block; the previous setup comes back after."""
    events = CapturedEvents()
    config = build_config(sinks=[_ListSink(events)], redact=redact, sample=sample)
    pipeline = _SyncPipeline(config)
    with client._lock:
        previous, client._pipeline = client._pipeline, pipeline
    try:
        yield events
    finally:
        with client._lock:
            client._pipeline = previous
        # Events opened inside the block and still open go where the client now sends them.
        pipeline.submit = client._submit  # type: ignore[method-assign]
        pipeline.shutdown()


class SimulatedClock:
    """A clock you move by hand; events read it for their start, end and duration."""

    def __init__(self, start: datetime) -> None:
        # Event clocks are perf_counter readings; the pipeline maps them to wall time with the
        # current offset, so a reading shifted by (start - now) lands at *start*.
        self._t = time.perf_counter() + (start - datetime.now(timezone.utc)).total_seconds()

    def __call__(self) -> float:
        return self._t

    def advance(self, ms: float) -> None:
        """Move forward by *ms* milliseconds."""
        self._t += ms / 1000.0

    def set(self, when: datetime) -> None:
        """Jump to *when* (a timezone-aware datetime)."""
        self._t = time.perf_counter() + (when - datetime.now(timezone.utc)).total_seconds()


@contextmanager
def simulated_clock(start: datetime | None = None) -> Iterator[SimulatedClock]:
    """Events started inside get their times from a :class:`SimulatedClock`.

    For tests of duration-based logic and for generating realistic history without waiting::

        with simulated_clock(datetime(2026, 1, 1, tzinfo=timezone.utc)) as clock:
            with event("job"):
                clock.advance(1500)          # this job took 1.5 s
    """
    clock = SimulatedClock(start or datetime.now(timezone.utc))
    previous = _event_module._clock
    _event_module._clock = clock
    try:
        yield clock
    finally:
        _event_module._clock = previous
