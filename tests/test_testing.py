from __future__ import annotations

import pytest

import wideevents
from wideevents import event
from wideevents.sinks import MemorySink
from wideevents.testing import CapturedEvents, capture


def checkout(items: int) -> None:
    with event("checkout", items=items, password="hunter2"), event("db.query"):
        wideevents.add(rows=items)


def test_capture_records_final_events_synchronously() -> None:
    with capture() as events:
        checkout(3)
        assert [e["name"] for e in events] == ["db.query", "checkout"]  # no flush needed
    ev = events.one("checkout")
    assert ev["items"] == 3
    assert ev["password"] == "[REDACTED]"  # what a sink would receive
    assert events.one("db.query")["parent_id"] == ev["span_id"]


def test_capture_restores_the_previous_setup() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink])
    with capture() as events:
        checkout(1)
    checkout(2)
    wideevents.flush()
    assert len(events) == 2
    assert [r["items"] for r in sink.events if r["name"] == "checkout"] == [2]


def test_one_explains_what_it_saw() -> None:
    events = CapturedEvents([{"name": "a"}, {"name": "b"}, {"name": "b"}])
    with pytest.raises(
        AssertionError, match=r"expected one event 'b', got 2 \(seen: \['a', 'b'\]\)"
    ):
        events.one("b")
    assert events.named("a") == [{"name": "a"}]


def test_the_pytest_fixture_is_registered(captured_events: CapturedEvents) -> None:
    checkout(5)
    assert captured_events.one("checkout")["items"] == 5
