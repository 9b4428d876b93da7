"""Events inside OTel spans join their trace; OTel spans become wide events."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

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


class Downstream:
    """A real HTTP server on loopback (404 for paths with "missing") that keeps the
    ``traceparent`` of every request it gets, with OTel's requests instrumentation on."""

    def __init__(self, provider: TracerProvider) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        self.traceparents: list[str] = []
        sent = self.traceparents

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sent.append(self.headers.get("traceparent", ""))
                self.send_response(404 if "missing" in self.path else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.instrumentor = RequestsInstrumentor()
        self.instrumentor.instrument(tracer_provider=provider)

    def close(self) -> None:
        self.instrumentor.uninstrument()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def downstream() -> Iterator[Callable[[TracerProvider], Downstream]]:
    made: list[Downstream] = []

    def start(provider: TracerProvider) -> Downstream:
        made.append(Downstream(provider))
        return made[-1]

    yield start
    for d in made:
        d.close()


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


def test_requests_instrumentation_spans_become_wide_events(
    memory: MemorySink, downstream: Callable[[TracerProvider], Downstream]
) -> None:
    # The real opentelemetry-instrumentation-requests, calling a real HTTP server: a codebase
    # already on OTel gets its outgoing calls as wide events, inside the caller's trace.
    import requests

    provider = TracerProvider()
    provider.add_span_processor(WideEventsSpanProcessor())
    server = downstream(provider)
    base, sent = server.url, server.traceparents
    join_otel_traces()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("sync_orders") as job, event("plan"):
        assert requests.get(f"{base}/orders?token=tok-s3cr3t-123", timeout=5).ok
        assert requests.get(f"{base}/missing", timeout=5).status_code == 404
    wideevents.flush()
    calls = [r for r in memory.events if r["name"] == "GET"]
    assert len(calls) == 2, [r["name"] for r in memory.events]
    # Old-convention attributes (the instrumentation's default) arrive under stable names.
    assert "http.status_code" not in calls[0] and "http.url" not in calls[0]
    ok, missing = sorted(calls, key=lambda r: r["http.response.status_code"])
    assert ok["http.response.status_code"] == 200 and missing["http.response.status_code"] == 404
    assert ok["http.request.method"] == "GET"
    assert ok["url.full"].startswith(f"{base}/orders")
    assert "tok-s3cr3t-123" not in ok["url.full"]  # redacted like any event
    assert missing["error"] is True  # a 4xx client span is an error in OTel's conventions
    # One trace: the OTel span, the calls it made, and the wide event opened inside it (by
    # default the calls are the OTel span's children: see spans_inside); their traceparent
    # went out with the trace.
    ctx = job.get_span_context()
    plan = next(r for r in memory.events if r["name"] == "plan")
    assert {r["trace_id"] for r in [*calls, plan]} == {f"{ctx.trace_id:032x}"}
    assert {r["parent_id"] for r in [*calls, plan]} == {f"{ctx.span_id:016x}"}
    # (The flags after the ids: sampled, and more bits in newer OTel versions.)
    assert sorted(h[:-3] for h in sent) == sorted(
        f"00-{ctx.trace_id:032x}-{r['span_id']}" for r in calls
    )


def test_with_spans_inside_otel_spans_inside_an_event_are_its_children(
    memory: MemorySink,
) -> None:
    from opentelemetry import propagate
    from opentelemetry import trace as otel_trace

    provider = TracerProvider()
    provider.add_span_processor(WideEventsSpanProcessor())  # keeps spans_inside as it is
    join_otel_traces(spans_inside=True)
    tracer = provider.get_tracer("app")
    with event("GET /orders") as request:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # what an OTel-instrumented client sends
        with event("load"), tracer.start_as_current_span("SELECT orders"):
            pass
    # Once the event has ended it is no longer OTel's current span.
    assert not otel_trace.get_current_span().get_span_context().is_valid
    with tracer.start_as_current_span("after"):
        pass
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    assert headers["traceparent"] == request.traceparent
    assert got["SELECT orders"]["trace_id"] == got["GET /orders"]["trace_id"]
    assert got["SELECT orders"]["parent_id"] == got["load"]["span_id"]
    assert got["after"]["trace_id"] != got["GET /orders"]["trace_id"]
    assert got["after"]["parent_id"] is None

    # Turned off while an event is open: the event still detaches its span on exit.
    with event("open when turned off"):
        join_otel_traces(False)
    assert not otel_trace.get_current_span().get_span_context().is_valid
    # Joining alone (what the span processor turns on) leaves spans inside events alone.
    for join in (False, True):
        join_otel_traces(join)
        with event(f"unjoined {join}"), tracer.start_as_current_span(f"alone {join}"):
            pass
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    for join in (False, True):
        assert got[f"alone {join}"]["trace_id"] != got[f"unjoined {join}"]["trace_id"]
    WideEventsSpanProcessor()
    with event("after a processor"), tracer.start_as_current_span("still alone"):
        pass
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    assert got["still alone"]["trace_id"] != got["after a processor"]["trace_id"]


def test_an_outgoing_call_inside_a_flask_request_is_in_its_trace(
    memory: MemorySink, downstream: Callable[[TracerProvider], Downstream]
) -> None:
    # The WSGI middleware's event (no OTel Flask instrumentation) and a real outgoing call
    # traced by opentelemetry-instrumentation-requests: one trace, continued downstream.
    import requests
    from flask import Flask

    from wideevents.integrations.flask import WideEvents

    join_otel_traces(spans_inside=True)
    provider = TracerProvider()
    provider.add_span_processor(WideEventsSpanProcessor())  # after: spans_inside stays on
    server = downstream(provider)
    app = Flask("bridge")
    WideEvents(app)

    @app.get("/orders/<int:n>")
    def orders(n: int) -> str:
        return requests.get(f"{server.url}/stock/{n}", timeout=5).text

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = app.test_client().get("/orders/7", headers={"traceparent": caller})
    response.close()  # as a server does once the body is sent: the event ends
    assert response.status_code == 200
    wideevents.flush()
    got = {r["name"]: r for r in memory.events}
    assert sorted(got) == ["GET", "GET /orders/<int:n>"], sorted(got)
    request, call = got["GET /orders/<int:n>"], got["GET"]
    assert request["trace_id"] == call["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert request["parent_id"] == "b7ad6b7169203331"
    assert call["parent_id"] == request["span_id"]
    assert [h[:-3] for h in server.traceparents] == [f"00-{request['trace_id']}-{call['span_id']}"]
