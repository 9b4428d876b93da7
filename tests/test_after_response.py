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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import wideevents
from wideevents import _pipeline
from wideevents.integrations.flask import WideEvents
from wideevents.sinks import Batch, JsonLinesSink, MemorySink, Sink
from wideevents.sinks.duckdb import DuckDBSink

from .test_pipeline import BlockingSink

BATCH = _pipeline._INLINE_BATCH


class ThreadsSink(MemorySink):
    """A memory sink that notes the thread of every export."""

    inline_safe = True  # an export of its own: said again, or it would not be

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


class StuckSink(BlockingSink):
    """Holds the worker inside export until released; an app thread may export too."""

    inline_safe = True


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
    try:
        serve_one(app, 0)
        assert sink.entered.wait(5)  # the worker now holds the pipeline, stuck in export
        started = time.perf_counter()
        for i in range(1, 4 * BATCH):
            serve_one(app, i)
        elapsed = time.perf_counter() - started
        assert wideevents.stats()["queued"] == 4 * BATCH - 1  # kept for the worker
        assert elapsed < 5.0  # the stuck sink holds the worker for 10 s
    finally:
        sink.release.set()
    wideevents.flush()
    assert len(sink.events) == 4 * BATCH


def test_no_app_thread_drains_into_a_mix_of_sinks_or_with_app_code_or_after_shutdown(
    slow_worker: None,
) -> None:
    def queued_after_a_batch_of_responses() -> int:
        app = make_app()
        for i in range(BATCH):
            serve_one(app, i)
        return wideevents.stats()["queued"]

    wideevents.configure("svc", sinks=[ThreadsSink(), MayBlockSink()], flush_interval=60)
    assert queued_after_a_batch_of_responses() == BATCH
    hooked = wideevents.Redaction(hooks=[lambda key, value, fields: value])
    wideevents.configure("svc", sinks=[ThreadsSink()], redact=hooked, flush_interval=60)
    assert queued_after_a_batch_of_responses() == BATCH
    sampling = wideevents.sampling
    predicate = [sampling.where("user.id", lambda value: value >= 0)]
    wideevents.configure("svc", sinks=[ThreadsSink()], sample=predicate, flush_interval=60)
    assert queued_after_a_batch_of_responses() == BATCH
    own_rule = [sampling.Rule(lambda d, e, f: True, 1, "mine")]
    wideevents.configure("svc", sinks=[ThreadsSink()], sample=own_rule, flush_interval=60)
    assert queued_after_a_batch_of_responses() == BATCH
    builtin = [sampling.errors(), sampling.slower_than(500), sampling.where("user.id", 3)]
    wideevents.configure("svc", sinks=[ThreadsSink()], sample=builtin, flush_interval=60)
    assert queued_after_a_batch_of_responses() == 0
    sink = ThreadsSink()
    wideevents.configure("svc", sinks=[sink], flush_interval=60)
    assert queued_after_a_batch_of_responses() == 0  # the same, allowed: drained here
    pipeline = wideevents._client.DEFAULT._pipeline
    assert pipeline is not None
    pipeline.shutdown()
    for i in range(BATCH):
        with wideevents.event("late", i=i):
            pass
    pipeline.after_response()
    assert len(pipeline.queue) == BATCH and len(sink.events) == BATCH


def _a_batch_interrupted_by_a_signal(
    monkeypatch: pytest.MonkeyPatch, matches: Callable[[int], bool], rate: int
) -> ThreadsSink:
    """Serve one batch of requests under a rule that keeps 1 in *rate* of the events whose
    ``user.id`` *matches*; the batch's drain, on the last request's thread, meets a
    KeyboardInterrupt (as gunicorn's SIGQUIT handler raises SystemExit) while it samples the
    last event, once."""
    raised = []
    decide = _pipeline.decide

    def decide_or_interrupt(rules: Any, trace_id: int, *args: Any) -> int:
        if args[-1]["user.id"] == BATCH - 1 and not raised:  # the events before: sampled
            raised.append(True)
            raise KeyboardInterrupt
        return decide(rules, trace_id, *args)

    monkeypatch.setattr(_pipeline, "decide", decide_or_interrupt)
    sink = ThreadsSink()
    # A rule of the sampling module's own (the drain runs on the request's thread), with the
    # predicate it would have as where("user.id", matches).
    rule = wideevents.sampling.Rule(
        lambda d, e, f: matches(f["user.id"]), rate, "matches", app_code=False
    )
    wideevents.configure("svc", sinks=[sink], sample=[rule], flush_interval=60)
    app = make_app()
    for i in range(BATCH - 1):
        serve_one(app, i)
    with pytest.raises(KeyboardInterrupt):
        serve_one(app, BATCH - 1)
    return sink


def test_a_signal_in_the_drain_puts_the_events_back(
    slow_worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = _a_batch_interrupted_by_a_signal(monkeypatch, lambda value: True, 1)
    assert wideevents.stats()["queued"] == BATCH  # none lost, none counted as sent
    wideevents.flush()
    assert sorted(e["user.id"] for e in sink.events) == list(range(BATCH))


def test_events_put_back_by_a_signal_are_counted_as_sampled_out_once(
    slow_worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rate 2**40: an even id is as good as never kept.
    sink = _a_batch_interrupted_by_a_signal(monkeypatch, lambda value: value % 2 == 0, 1 << 40)
    assert wideevents.stats()["sampled_out"] == 0  # the whole batch went back
    wideevents.flush()
    stats = wideevents.stats()
    assert stats["sampled_out"] == BATCH // 2
    assert stats["emitted"] == BATCH
    assert sorted(e["user.id"] for e in sink.events) == list(range(1, BATCH, 2))


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

    class Uploading(MemorySink):
        def export(self, batch: Batch) -> None:  # say, an HTTP call
            super().export(batch)

    class Shipping(JsonLinesSink):
        def export(self, batch: Batch) -> None:
            super().export(batch)

    assert MemorySink.inline_safe and not Uploading().inline_safe
    assert not Shipping(tmp_path / "other.jsonl").inline_safe


def test_an_app_thread_only_ever_appends_to_a_segment_the_worker_opened(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "ev.duckdb", ingest_interval=0)
    sink.writer.segment_bytes = 200  # ten lines
    spool = sink.paths.spool
    line = b'{"name":"a","i":1}\n'
    batch = Batch([{"name": "a", "i": 1}], [line])

    def files(suffix: str) -> list[Path]:
        return sorted(spool.glob("*" + suffix))

    def on_worker(func: Any) -> None:
        t = threading.Thread(target=func, name="wideevents-worker")
        t.start()
        t.join()

    assert not sink.inline_ready()  # no segment yet: the worker writes first
    on_worker(lambda: sink.export(batch))
    assert sink.inline_ready()
    sink.export(batch)  # an app thread appends
    on_worker(sink.flush)  # the worker seals what was written and opens the next segment
    assert len(files(".jsonl")) == 1
    [prepared] = files(".jsonl.open")
    for _ in range(20):  # past the segment's size: an app thread still only appends ...
        sink.export(batch)
    assert files(".jsonl.open") == [prepared] and len(files(".jsonl")) == 1
    assert not sink.inline_ready()  # ... and the pipeline leaves the next batch to the worker
    on_worker(sink.flush)
    assert len(files(".jsonl")) == 2
    assert sink.inline_ready()
    on_worker(sink.flush)  # idle: the empty segment stays open for the next events
    assert len(files(".jsonl.open")) == 1 and len(files(".jsonl")) == 2
    sink.flush()  # an explicit flush seals everything and opens nothing
    assert not files(".jsonl.open")
    sink.shutdown()


def test_django_exports_a_waiting_batch_when_it_has_sent_a_response(
    slow_worker: None,
) -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished

    from wideevents.integrations.django import _after_response

    sink = ThreadsSink()
    wideevents.configure("svc", sinks=[sink], flush_interval=60)
    for i in range(BATCH):
        with wideevents.event("GET /x", i=i):
            pass
    # Under ASGI the thread that closes responses is shared: it does not drain. Nor does
    # the thread that closes a response no handler returned (ASGI's early 400 and 413).
    request_finished.send_robust(sender=ASGIHandler)  # other receivers need settings
    request_finished.send_robust(sender=None)
    assert "MainThread" not in sink.threads
    results = dict(request_finished.send_robust(sender=WSGIHandler))
    assert results[_after_response] is None  # ours ran and raised nothing
    assert sink.threads == ["MainThread"]
    assert len(sink.events) == BATCH


def test_one_response_pays_for_at_most_a_few_batches(slow_worker: None) -> None:
    sink = ThreadsSink()
    wideevents.configure("svc", sinks=[sink], flush_interval=60)
    for i in range(10 * BATCH):  # a backlog, as a worker that backed off leaves
        with wideevents.event("job", i=i):
            pass
    pipeline = wideevents._client.DEFAULT._pipeline
    assert pipeline is not None
    pipeline.after_response()
    assert len(sink.events) == _pipeline._INLINE_MAX
    assert len(pipeline.queue) == 10 * BATCH - _pipeline._INLINE_MAX


def test_a_segment_is_never_unlinked_while_it_holds_lines(tmp_path: Path) -> None:
    # A signal's exception can land after a write's bytes and before they are counted.
    sink = DuckDBSink(tmp_path / "ev.duckdb", ingest_interval=0)
    line = b'{"name":"a","i":1}\n'
    sink.export(Batch([{"name": "a", "i": 1}], [line]))
    sink.writer._size = 0  # as if interrupted between os.write and the count
    sink.flush()
    [sealed] = sink.paths.spool.glob("*.jsonl")
    assert sealed.read_bytes() == line
    sink.shutdown()


@pytest.mark.parametrize("when", ["before", "midway", "after"])
def test_a_signal_in_a_segment_write_keeps_what_landed_whole_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    sink = DuckDBSink(tmp_path / "ev.duckdb", ingest_interval=0)
    first = Batch([{"i": 1}], [b'{"i":1}\n'])
    second = Batch([{"i": 2}, {"i": 3}], [b'{"i":2}\n', b'{"i":3}\n'])
    sink.export(first)
    segment = sink.writer._fd
    real_write = os.write

    def interrupted(fd: int, data: Any) -> int:
        if fd != segment:
            return real_write(fd, data)
        if when == "midway":
            real_write(fd, bytes(data[:5]))
        elif when == "after":
            real_write(fd, data)
        raise KeyboardInterrupt  # as gunicorn's SIGQUIT handler raises SystemExit

    monkeypatch.setattr(os, "write", interrupted)
    lost_before = wideevents.stats().get("events_lost_errors", 0)
    with pytest.raises(KeyboardInterrupt):
        sink.export(second)
    monkeypatch.setattr(os, "write", real_write)
    lost = 0 if when == "after" else 2
    assert sink.writer.lines_lost == lost
    assert wideevents.stats().get("events_lost_errors", 0) - lost_before == lost
    sink.export(Batch([{"i": 4}], [b'{"i":4}\n']))  # writing goes on, after whole lines
    sink.flush()
    [sealed] = sink.paths.spool.glob("*.jsonl")
    kept = [1, 2, 3, 4] if when == "after" else [1, 4]
    assert sealed.read_bytes() == b"".join(b'{"i":%d}\n' % i for i in kept)
    sink.shutdown()


def test_torn_bytes_that_cannot_be_cut_are_left_to_the_ingester(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full mid-write and the truncate failing too: the segment is let go unsealed,
    as a killed writer's, and the ingester keeps its whole lines only."""
    from wideevents.store import spool
    from wideevents.store.ingest import ingest_store

    db = tmp_path / "ev.duckdb"
    sink = DuckDBSink(db, ingest_interval=0)
    good = Batch([{"name": "a", "i": 1}], [b'{"name":"a","i":1}\n'])
    sink.export(good)
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 8:
            return real_write(fd, bytes(data[:8]))  # part of a line lands ...
        raise OSError(28, "No space left on device")  # ... then the disk is full

    def cannot_truncate(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(spool.os, "write", half_then_full)
        m.setattr(spool.os, "ftruncate", cannot_truncate)
        sink.export(Batch([{"name": "b", "i": 2}], [b'{"name":"b","i":2}\n']))
    assert not list(sink.paths.spool.glob("*.jsonl"))  # nothing torn was sealed
    assert ingest_store(db).rows == 1  # type: ignore[union-attr]
    assert not list(sink.paths.spool.glob("*.jsonl*"))
    sink.shutdown()
