"""Events inside OTel spans join their trace; OTel spans become wide events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

import wideevents
from wideevents import event
from wideevents.otel import WideEventsSpanProcessor, join_otel_traces
from wideevents.sinks import MemorySink


@pytest.fixture
def memory() -> Iterator[MemorySink]:
    sink = MemorySink()
    wideevents.configure("bridge", sinks=[sink])
    yield sink
    join_otel_traces(False)


def test_an_event_inside_an_otel_span_joins_its_trace(memory: MemorySink) -> None:
    tracer = TracerProvider().get_tracer("app")
    join_otel_traces()
    with tracer.start_as_current_span("GET /orders") as span, event("load_orders"):
        pass
    with event("outside"):
        pass
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    ctx = span.get_span_context()
    assert got["load_orders"]["trace_id"] == f"{ctx.trace_id:032x}"
    assert got["load_orders"]["parent_id"] == f"{ctx.span_id:016x}"
    assert got["outside"]["parent_id"] is None
    assert got["outside"]["trace_id"] != got["load_orders"]["trace_id"]


def test_without_joining_an_otel_span_is_ignored(memory: MemorySink) -> None:
    tracer = TracerProvider().get_tracer("app")
    with tracer.start_as_current_span("GET /orders"), event("load_orders"):
        pass
    wideevents.flush()
    assert memory.events[0]["parent_id"] is None


def test_otel_spans_become_wide_events(memory: MemorySink) -> None:
    provider = TracerProvider()
    provider.add_span_processor(WideEventsSpanProcessor())
    tracer = provider.get_tracer("opentelemetry.instrumentation.requests")
    before = dt.datetime.now(dt.timezone.utc)
    with tracer.start_as_current_span(
        "GET",
        attributes={
            "http.request.method": "GET",
            "url.full": "https://api.example.com/x?token=s3cr3t-tok",
            "http.request.header.authorization": ("Bearer abcdefghijklmnop",),
        },
    ) as outer:
        with event("parse"):  # a wide event inside: the same trace
            pass
        try:
            with tracer.start_as_current_span("db") as inner:
                raise TimeoutError("statement timeout")
        except TimeoutError:
            pass
        outer.set_status(Status(StatusCode.OK))
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    outer_ctx, inner_ctx = outer.get_span_context(), inner.get_span_context()
    assert got["db"]["span_id"] == f"{inner_ctx.span_id:016x}"
    assert got["GET"]["trace_id"] == f"{outer_ctx.trace_id:032x}"
    assert got["GET"]["span_id"] == f"{outer_ctx.span_id:016x}"
    assert got["GET"]["parent_id"] is None
    assert got["db"]["parent_id"] == got["GET"]["span_id"]
    assert got["parse"]["parent_id"] == got["GET"]["span_id"]
    assert got["db"]["error"] is True
    assert got["db"]["error.type"] == "TimeoutError"
    assert got["db"]["error.message"] == "statement timeout"
    assert got["GET"]["error"] is False
    assert "s3cr3t-tok" not in got["GET"]["url.full"]  # redacted like any event
    assert got["GET"]["http.request.header.authorization"] == "[REDACTED]"
    assert got["GET"]["otel.scope.name"] == "opentelemetry.instrumentation.requests"
    start = dt.datetime.fromisoformat(got["GET"]["timestamp"].replace("Z", "+00:00"))
    assert abs((start - before).total_seconds()) < 1.0
    assert got["GET"]["duration_ms"] >= got["db"]["duration_ms"] >= 0
