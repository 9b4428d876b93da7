from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import wideevents
from wideevents import ConfigError, event
from wideevents.sinks import Batch, JsonLinesSink, MemorySink, Sink


class BlockingSink(MemorySink):
    """Holds the worker inside export until released, so the queue fills up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, batch: Batch) -> None:
        self.entered.set()
        self.release.wait(10)
        super().export(batch)


class BrokenSink(Sink):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, batch: Batch) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


def test_full_queue_drops_and_counts_never_blocks() -> None:
    sink = BlockingSink()
    wideevents.configure("svc", sinks=[sink], queue_size=100)
    with event("first"):
        pass
    assert sink.entered.wait(5)  # the worker is now stuck in export
    started = time.perf_counter()
    for i in range(1000):
        with event("burst", i=i):
            pass
    elapsed = time.perf_counter() - started
    stats = wideevents.stats()
    assert stats["dropped"] == 900
    assert stats["queued"] == 100
    assert elapsed < 2.0  # the app thread never waited for the stuck sink
    sink.release.set()
    wideevents.flush()
    stats = wideevents.stats()
    assert stats["emitted"] == 1001
    assert len(sink.events) == stats["emitted"] - stats["dropped"] == 101
    assert stats["exported"] == 101


def test_broken_sink_is_counted_logged_once_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WIDEEVENTS_RAISE_INTERNAL", "0")
    broken, good = BrokenSink(), MemorySink()
    wideevents.configure("svc", sinks=[broken, good])
    with caplog.at_level(logging.WARNING, logger="wideevents"):
        for i in range(5):
            with event("op", i=i):
                pass
            wideevents.flush()
    assert len(good.events) == 5  # the other sink still gets every batch
    assert broken.calls == 5
    assert wideevents.stats()["sink_errors"] == 5
    assert len([m for m in caplog.messages if "sink_errors" in m]) == 1


def test_broken_sink_raises_under_the_projects_own_tests() -> None:
    wideevents.configure("svc", sinks=[BrokenSink()])
    with event("op"):
        pass
    with pytest.raises(OSError, match="No space left"):
        wideevents.flush()


def test_worker_exports_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    wideevents.configure("svc", sinks=[JsonLinesSink(path)], flush_interval=0.2)
    with event("op"):
        pass
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not (path.exists() and path.read_bytes()):
        time.sleep(0.02)
    assert path.read_bytes().count(b"\n") == 1


def test_jsonl_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "e.jsonl"
        wideevents.configure("svc", sinks=[JsonLinesSink(path)])
        with event("op"):
            pass
        wideevents.flush()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sinks_and_service_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv("WIDEEVENTS_SINKS", f"jsonl:{path}, memory")
    monkeypatch.setenv("WIDEEVENTS_SERVICE", "billing")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "service.version=2.1,deployment.environment.name=prod"
    )
    with event("invoice"):
        pass
    wideevents.flush()
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["service.name"] == "billing"
    assert record["service.version"] == "2.1"
    assert record["deployment.environment.name"] == "prod"


def test_otel_service_name_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDEEVENTS_SINKS", "memory")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    sink = MemorySink()
    wideevents.configure(sinks=[sink])
    with event("x"):
        pass
    wideevents.flush()
    assert sink.events[0]["service.name"] == "from-otel"


def test_unknown_sink_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"unknown sink 'kafka:x'.*jsonl"):
        wideevents.configure(sinks="kafka:x")


def test_default_without_configuration_spools_for_the_store_in_cwd(tmp_path: Path) -> None:
    with event("hello", n=1):
        pass
    wideevents.flush()
    spool = tmp_path / "wideevents.duckdb.spool"
    (segment,) = [p for p in spool.iterdir() if p.suffix == ".jsonl"]
    assert json.loads(segment.read_text())["n"] == 1


def test_reconfigure_sends_open_events_to_the_new_sinks() -> None:
    first, second = MemorySink(), MemorySink()
    wideevents.configure("a", sinks=[first])
    with event("spanning"):
        wideevents.configure("b", sinks=[second])
    wideevents.flush()
    assert first.events == []
    assert [r["name"] for r in second.events] == ["spanning"]


def _child(path: str, n: int) -> None:
    for i in range(n):
        with event("child", i=i):
            pass
    # No flush: multiprocessing's exit runs the SDK's finalizer.


def test_fork_children_get_their_own_worker(tmp_path: Path) -> None:
    path = tmp_path / "fork.jsonl"
    wideevents.configure("svc", sinks=[JsonLinesSink(path)])
    with event("parent"):
        pass  # the parent's worker is running when it forks
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_child, args=(str(path), 200)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    wideevents.flush()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    children = [r for r in records if r["name"] == "child"]
    assert len(children) == 600
    assert len([r for r in records if r["name"] == "parent"]) == 1
    pids = {r["process.pid"] for r in children}
    assert len(pids) == 3
    assert os.getpid() not in pids
    assert len({r["span_id"] for r in records}) == len(records)  # fresh ids in every child


def emit_in_a_forked_child(count: int = 1) -> int:
    """After one "parent" event, fork with os.fork(): the child emits *count* "child"
    events, flushes and leaves through os._exit. Returns the child's exit code."""
    with event("parent"):
        pass
    wideevents.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            for i in range(count):
                with event("child", i=i):
                    pass
            wideevents.flush()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_raw_fork_child_flushes_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "rawfork.jsonl"
    wideevents.configure("svc", sinks=[JsonLinesSink(path)])
    assert emit_in_a_forked_child(50) == 0
    names = [json.loads(line)["name"] for line in path.read_text().splitlines()]
    assert names.count("child") == 50
    assert names.count("parent") == 1


def test_events_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    path = tmp_path / "exit.jsonl"
    script = textwrap.dedent(
        f"""
        import wideevents
        wideevents.configure("svc", sinks="jsonl:{path}", flush_interval=60)
        for i in range(5000):
            with wideevents.event("op", i=i):
                pass
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert path.read_text().count("\n") == 5000


def test_import_is_inert_and_cheap(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, threading, time
        t0 = time.perf_counter()
        import wideevents
        elapsed = time.perf_counter() - t0
        heavy = [m for m in ("duckdb", "click", "flask", "django", "opentelemetry.sdk",
                             "opentelemetry.exporter") if m in sys.modules]
        print(heavy, threading.active_count(), sorted(os.listdir(".")), round(elapsed * 1000, 1))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:3] == ["[]", "1", "[]"], out


def test_stats_before_any_event() -> None:
    stats: dict[str, Any] = wideevents.stats()
    assert stats["emitted"] == 0
    assert stats["dropped"] == 0


def test_records_do_not_alias_the_events_fields() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink])
    with event("op", a=1) as ev:
        pass
    wideevents.flush()
    ev.fields.clear()  # an app thread that still holds the event
    ev["password"] = "hunter2"
    assert sink.events[0]["a"] == 1
    assert "password" not in sink.events[0]


def test_a_batchs_lines_are_its_events_whatever_their_text_holds(tmp_path: Path) -> None:
    """``Batch.lines`` (for sinks of your own too) hold exactly one JSON line per event, line
    breaks and separators inside values included."""
    seen: list[Batch] = []

    class Keep(Sink):
        def export(self, batch: Batch) -> None:
            seen.append(batch)

    path = tmp_path / "events.jsonl"
    wideevents.configure("svc", sinks=[Keep(), JsonLinesSink(path)])
    odd = ["a\nb", "c\r\nd", "e\rf", "g\u2028h\u2029i", "j\x0bk\x0cl\x1cm\x85n", ""]
    for n, text in enumerate(odd):
        with event("op", n=n, text=text, nested={"t": text}):
            pass
    wideevents.flush()
    lines = [line for batch in seen for line in batch.lines]
    assert [json.loads(line)["text"] for line in lines] == odd
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert b"".join(lines) == path.read_bytes()
    assert sum(len(b) for b in seen) == len(odd)
