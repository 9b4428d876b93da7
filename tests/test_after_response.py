"""After a response has gone out, the request's thread encodes a waiting batch itself.

The WSGI app is called the way a sync server calls it (iterate the body, then close it), in
this process, so the test can see which thread exported what.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import wideevents
from wideevents import _pipeline
from wideevents.integrations.flask import WideEvents
from wideevents.sinks import Batch, JsonLinesSink, MemorySink, Sink
from wideevents.sinks.duckdb import DuckDBSink

BATCH = _pipeline._INLINE_BATCH


class ThreadsSink(MemorySink):
    """A memory sink (inline-safe) that notes the thread of every export."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def export(self, batch: Batch) -> None:
        self.threads.append(threading.current_thread().name)
        super().export(batch)


class MayBlockSink(Sink):
    """A sink that does not say it is inline-safe (the default for a sink of the app's own)."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.count = 0

    def export(self, batch: Batch) -> None:
        self.threads.append(threading.current_thread().name)
        self.count += len(batch)


class StuckSink(ThreadsSink):
    """Holds the worker inside export until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, batch: Batch) -> None:
        self.entered.set()
        self.release.wait(10)
        super().export(batch)


def make_app() -> Flask:
    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        wideevents.add(**{"user.id": user_id})
        return {"id": user_id}

    WideEvents(app)
    return app


def serve_one(app: Flask, i: int) -> None:
    """What a sync server does with one request: call, send the body, close."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/users/{i}",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    result = app(environ, lambda status, headers, exc_info=None: None)
    for _ in result:
        pass
    result.close()  # type: ignore[attr-defined]


@pytest.fixture
def slow_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that sleeps through the test, so only the app's thread can drain the queue."""
    monkeypatch.setattr(_pipeline, "_POLL", 60.0)
    monkeypatch.setattr(_pipeline, "_IDLE_POLL", 60.0)


def test_the_thread_that_sent_a_response_exports_a_waiting_batch_itself(
    slow_worker: None,
) -> None:
    sink = ThreadsSink()
    wideevents.configure("svc", sinks=[sink], flush_interval=60)
    app = make_app()
    for i in range(BATCH - 1):
        serve_one(app, i)
    assert "MainThread" not in sink.threads  # fewer than a batch: nothing done here
    serve_one(app, BATCH - 1)
    # The last response's close encoded the batch on this thread, before returning.
    assert sink.threads == ["MainThread"]
    wideevents.flush()
    assert sorted(e["user.id"] for e in sink.events) == list(range(BATCH))
    assert {e["http.route"] for e in sink.events} == {"/users/<int:user_id>"}


def test_a_sink_that_may_block_is_only_ever_called_by_the_worker() -> None:
    sink = MayBlockSink()
    wideevents.configure("svc", sinks=[sink])
    app = make_app()
    for i in range(3 * BATCH):
        serve_one(app, i)
    deadline = time.monotonic() + 10
    while sink.count < 3 * BATCH and time.monotonic() < deadline:
        time.sleep(0.01)  # no flush(): that would drain on this thread too
    assert sink.count == 3 * BATCH
    assert set(sink.threads) == {"wideevents-worker"}


def test_after_a_response_the_app_never_waits_for_a_busy_worker() -> None:
    sink = StuckSink()
    wideevents.configure("svc", sinks=[sink])
    app = make_app()
    serve_one(app, 0)
    assert sink.entered.wait(5)  # the worker now holds the pipeline, stuck in export
    started = time.perf_counter()
    for i in range(1, 4 * BATCH):
        serve_one(app, i)
    elapsed = time.perf_counter() - started
    assert wideevents.stats()["queued"] == 4 * BATCH - 1  # kept for the worker, not lost
    assert elapsed < 2.0  # the stuck sink holds the worker for 10 s
    sink.release.set()
    wideevents.flush()
    assert len(sink.events) == 4 * BATCH


def test_which_sinks_may_be_called_from_an_app_thread(tmp_path: Path) -> None:
    assert JsonLinesSink(tmp_path / "new.jsonl").inline_safe
    assert JsonLinesSink(os.devnull).inline_safe
    read, write = os.pipe()
    try:
        assert not JsonLinesSink(f"/dev/fd/{write}").inline_safe  # a pipe can block
    finally:
        os.close(read)
        os.close(write)
    assert DuckDBSink(tmp_path / "ev.duckdb", ingest_interval=0).inline_safe
    assert not Sink.inline_safe


def test_a_scheduled_flush_with_events_flowing_opens_the_next_segment(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "ev.duckdb", ingest_interval=0)
    spool = sink.paths.spool
    batch = Batch([{"name": "a", "i": 1}], [b'{"name":"a","i":1}\n'])

    def open_segments() -> list[Path]:
        return list(spool.glob("*.jsonl.open"))

    def on_worker(func: Any) -> None:
        t = threading.Thread(target=func, name="wideevents-worker")
        t.start()
        t.join()

    sink.export(batch)
    sink.flush()  # an explicit flush (the app's thread): seals, opens nothing
    assert len(list(spool.glob("*.jsonl"))) == 1
    assert not open_segments()
    sink.export(batch)
    on_worker(sink.flush)  # the worker's flush, events flowing: the next segment is opened
    assert len(list(spool.glob("*.jsonl"))) == 2
    [prepared] = open_segments()
    sink.export(batch)  # an app thread's export appends to it
    assert prepared.stat().st_size == len(batch.lines[0])
    on_worker(sink.flush)
    [prepared] = open_segments()
    on_worker(sink.flush)  # idle: the empty segment is removed and none is opened
    assert not open_segments()
    assert len(list(spool.glob("*.jsonl"))) == 3
    sink.shutdown()


def test_django_exports_a_waiting_batch_when_it_has_sent_a_response(
    slow_worker: None,
) -> None:
    from django.core.signals import request_finished

    import wideevents.integrations.django  # connects to request_finished

    sink = ThreadsSink()
    wideevents.configure("svc", sinks=[sink], flush_interval=60)
    for i in range(BATCH):
        with wideevents.event("GET /x", i=i):
            pass
    assert "MainThread" not in sink.threads
    request_finished.send_robust(sender=None)  # other receivers need settings: not ours
    assert sink.threads.count("MainThread") == 1
    assert len(sink.events) == BATCH
