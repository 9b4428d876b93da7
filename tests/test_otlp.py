"""The OTLP sink against a real receiver process that decodes the protobuf."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wideevents
from wideevents import _internal, event
from wideevents.sinks import MemorySink
from wideevents.sinks.otlp import OTLPSink

from .serve_helpers import free_port

RECEIVER = Path(__file__).parent / "otlp_receiver.py"


class Receiver:
    def __init__(self, port: int, out: Path) -> None:
        self.port, self.out = port, out
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), str(self.port), str(self.out)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("receiver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def spans(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(free_port(), tmp_path / "spans.jsonl")
    r.start()
    yield r
    r.stop()


def test_events_become_spans_with_the_same_ids_times_attributes_and_status(
    receiver: Receiver,
) -> None:
    memory = MemorySink()
    sink = OTLPSink(receiver.url, headers={"Authorization": "Bearer test-token"})
    wideevents.configure("checkout-svc", version="1.2.3", sinks=[memory, sink])
    wide = {f"attr.{i:03d}": i for i in range(200)}  # past the SDK's default limit of 128
    with (
        event(
            "GET /checkout",
            **{
                "http.request.method": "GET",
                "cart.items": 3,
                "tags": ["a", "b"],
                "nested": {"k": 1},
                **wide,
            },
        ),
        pytest.raises(ValueError, match="deadlock"),
        event("db.query"),
    ):
        raise ValueError("deadlock detected")
    assert wideevents.flush(10)
    assert sink.flush(10)
    spans = {s["name"]: s for s in receiver.spans()}
    records = {r["name"]: r for r in memory.events}
    root, child = spans["GET /checkout"], spans["db.query"]
    assert root["trace_id"] == records["GET /checkout"]["trace_id"]
    assert root["span_id"] == records["GET /checkout"]["span_id"] and root["parent_id"] is None
    assert child["parent_id"] == root["span_id"] and child["trace_id"] == root["trace_id"]
    start = dt.datetime.fromisoformat(records["GET /checkout"]["timestamp"].replace("Z", "+00:00"))
    assert abs(root["start"] - int(start.timestamp() * 1e9)) < 2_000
    assert root["end"] - root["start"] == pytest.approx(
        records["GET /checkout"]["duration_ms"] * 1e6, abs=2_000
    )
    assert all(root["attributes"][k] == v for k, v in wide.items())  # none dropped
    assert root["attributes"]["tags"] == ["a", "b"]
    assert json.loads(root["attributes"]["nested"]) == {"k": 1}
    assert root["kind"] == 2  # SERVER
    assert root["resource"]["service.name"] == "checkout-svc"
    assert root["resource"]["service.version"] == "1.2.3"
    assert root["scope"] == "wideevents" and root["authorization"] == "Bearer test-token"
    assert child["status"] == 2 and child["status_message"] == "deadlock detected"  # ERROR
    assert child["attributes"]["error.type"] == "ValueError"
    assert root["status"] == 0  # UNSET


def test_a_receiver_that_goes_away_and_comes_back(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIDEEVENTS_RAISE_INTERNAL", "0")
    sink = OTLPSink(receiver.url, timeout=0.5)
    wideevents.configure("svc", sinks=[sink])
    for i in range(100):
        with event("before", i=i):
            pass
    wideevents.flush(10)
    assert sink.flush(10)
    receiver.stop()
    started = time.perf_counter()
    for i in range(100):
        with event("during", i=i):
            pass
    wideevents.flush(0.5)
    assert time.perf_counter() - started < 2.0  # the app and the pipeline never waited
    assert not sink.flush(1.0)  # cannot deliver while it is down
    receiver.start()
    assert sink.flush(60)
    spans = receiver.spans()
    got = {(s["name"], s["attributes"]["i"]) for s in spans}
    assert got == {(n, i) for n in ("before", "during") for i in range(100)}
    stats = wideevents.stats()
    assert stats["otlp_export_errors"] >= 1
    assert stats.get("otlp_dropped_errors", 0) == 0


def test_a_full_buffer_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDEEVENTS_RAISE_INTERNAL", "0")
    sink = OTLPSink(f"http://127.0.0.1:{free_port()}/v1/traces", timeout=0.2, max_buffer=50)
    wideevents.configure("svc", sinks=[sink])
    for i in range(300):
        with event("op", i=i):
            pass
    wideevents.flush(10)
    assert _internal.STATS["otlp_dropped_errors"] == 250
    sink.shutdown(0.5)  # bounded, although nothing can be delivered
    assert _internal.STATS["otlp_dropped_errors"] == 300


def test_otlp_is_chosen_by_environment(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDEEVENTS_SINKS", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("WIDEEVENTS_SERVICE", "from-env")
    with event("hello"):
        pass
    wideevents.shutdown(10)
    (span,) = receiver.spans()
    assert span["name"] == "hello" and span["resource"]["service.name"] == "from-env"
    assert os.environ["WIDEEVENTS_SINKS"] == "otlp"
