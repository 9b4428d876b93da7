from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import wideevents
from wideevents import add, add_to_trace, current_event, event
from wideevents.sinks import MemorySink

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def records(sink: MemorySink) -> list[dict[str, Any]]:
    wideevents.flush()
    return list(sink.events)


def by_name(sink: MemorySink) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in records(sink)}


def test_core_fields(memory: MemorySink) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    with event("checkout", user_id=42, plan="pro") as ev:
        time.sleep(0.01)
    (r,) = records(memory)
    assert r["name"] == "checkout"
    assert r["user_id"] == 42
    assert r["plan"] == "pro"
    assert HEX32.match(r["trace_id"])
    assert HEX16.match(r["span_id"])
    assert r["parent_id"] is None
    assert r["trace_id"] == ev.trace_id_hex
    assert r["span_id"] == ev.span_id_hex
    assert r["error"] is False
    assert "error.type" not in r
    assert r["sample_rate"] == 1
    assert 10.0 <= r["duration_ms"] < 1000.0
    ts = dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
    assert r["timestamp"].endswith("Z")
    assert len(r["timestamp"].split(".")[1]) == 7
    assert abs((ts - before).total_seconds()) < 0.5
    assert r["service.name"] == "test-service"
    assert r["process.pid"] > 0
    assert r["host.name"]


def test_nesting_builds_one_trace(memory: MemorySink) -> None:
    with event("request"):
        with event("db.query"), event("db.connect"):
            pass
        with event("cache"):
            pass
    got = by_name(memory)
    root = got["request"]
    assert {r["trace_id"] for r in got.values()} == {root["trace_id"]}
    assert got["db.query"]["parent_id"] == root["span_id"]
    assert got["db.connect"]["parent_id"] == got["db.query"]["span_id"]
    assert got["cache"]["parent_id"] == root["span_id"]
    assert len({r["span_id"] for r in got.values()}) == 4


def test_separate_events_get_separate_traces(memory: MemorySink) -> None:
    for _ in range(50):
        with event("job"):
            pass
    assert len({r["trace_id"] for r in records(memory)}) == 50


def test_exception_is_recorded_and_reraised(memory: MemorySink) -> None:
    class PaymentDeclined(Exception):
        pass

    with pytest.raises(PaymentDeclined), event("pay"):
        raise PaymentDeclined("card declined by issuer")
    (r,) = records(memory)
    assert r["error"] is True
    assert r["error.type"].endswith("test_event.PaymentDeclined") or r["error.type"].endswith(
        "PaymentDeclined"
    )
    assert r["error.message"] == "card declined by issuer"


def test_builtin_exception_type_is_bare(memory: MemorySink) -> None:
    with pytest.raises(KeyError), event("lookup"):
        {}["missing"]
    (r,) = records(memory)
    assert r["error.type"] == "KeyError"


def test_app_can_mark_an_error_without_an_exception(memory: MemorySink) -> None:
    with event("validate") as ev:
        ev.add(error=True, **{"error.type": "ValidationError"})
    (r,) = records(memory)
    assert r["error"] is True
    assert r["error.type"] == "ValidationError"


def test_event_methods(memory: MemorySink) -> None:
    with event("req", a=1) as ev:
        ev.add(b=2, c="x")
        ev["d"] = 4.5
        ev.incr("retries")
        ev.incr("retries", 2)
        ev.incr("bytes", 10.5)
        for _ in range(3):
            with ev.timer("db.time_ms"):
                time.sleep(0.002)
        assert ev["a"] == 1
        assert "b" in ev
    (r,) = records(memory)
    assert (r["a"], r["b"], r["c"], r["d"], r["retries"], r["bytes"]) == (1, 2, "x", 4.5, 3, 10.5)
    assert 6.0 <= r["db.time_ms"] <= r["duration_ms"]


def test_module_add_reaches_the_innermost_event(memory: MemorySink) -> None:
    add(ignored=True)  # no current event: a silent no-op
    assert current_event() is None
    with event("outer") as outer:
        assert current_event() is outer
        with event("inner") as inner:
            assert current_event() is inner
            add(rows=3)
        add(total=9)
    assert current_event() is None
    got = by_name(memory)
    assert got["inner"]["rows"] == 3
    assert "rows" not in got["outer"]
    assert got["outer"]["total"] == 9


def test_add_to_trace_reaches_later_events_only(memory: MemorySink) -> None:
    with event("request"):
        with event("auth"):
            add_to_trace(**{"user.id": "u1"})
        with event("db"):
            pass
        with event("render"), event("template"):
            pass
    with event("other-trace"):
        pass
    got = by_name(memory)
    assert got["auth"]["user.id"] == "u1"
    assert got["db"]["user.id"] == "u1"
    assert got["template"]["user.id"] == "u1"
    assert "user.id" not in got["request"]  # started before the call
    assert "user.id" not in got["other-trace"]


def test_name_is_positional_only_and_options_are_underscored(memory: MemorySink) -> None:
    with event("op", kind="x", _keep=True) as ev:
        pass
    assert ev.kept
    (r,) = records(memory)
    assert r["kind"] == "x"
    assert "_keep" not in r


def test_decorator_sync(memory: MemorySink) -> None:
    @event("work", queue="default")
    def work(n: int) -> int:
        add(n=n)
        return n * 2

    assert work(2) == 4
    assert work(3) == 6
    assert work.__name__ == "work"
    got = records(memory)
    assert [(r["name"], r["n"], r["queue"]) for r in got] == [
        ("work", 2, "default"),
        ("work", 3, "default"),
    ]
    assert got[0]["span_id"] != got[1]["span_id"]


def test_decorator_async_and_task_inheritance(memory: MemorySink) -> None:
    @event("fetch")
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.001)
        add(i=i)
        return i

    async def main() -> list[int]:
        with event("batch"):
            return list(await asyncio.gather(*(fetch(i) for i in range(5))))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    got = records(memory)
    batch = next(r for r in got if r["name"] == "batch")
    fetches = [r for r in got if r["name"] == "fetch"]
    assert sorted(r["i"] for r in fetches) == [0, 1, 2, 3, 4]
    assert all(r["parent_id"] == batch["span_id"] for r in fetches)
    assert all(r["trace_id"] == batch["trace_id"] for r in fetches)


def test_concurrent_tasks_do_not_see_each_others_events(memory: MemorySink) -> None:
    async def handler(i: int) -> None:
        with event("request", i=i):
            await asyncio.sleep(0.001 * (5 - i))
            add(seen=i)

    async def main() -> None:
        await asyncio.gather(*(handler(i) for i in range(5)))

    asyncio.run(main())
    got = records(memory)
    assert sorted((r["i"], r["seen"]) for r in got) == [(i, i) for i in range(5)]
    assert all(r["parent_id"] is None for r in got)


def test_decorator_generator_spans_iteration_without_leaking(memory: MemorySink) -> None:
    @event("rows")
    def rows(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            add(last=i)
            yield i

    seen = []
    for value in rows(3):
        assert current_event() is None  # the caller never sees the generator's event
        seen.append(value)
    assert seen == [0, 1, 2]
    (r,) = records(memory)
    assert r["name"] == "rows"
    assert r["last"] == 2


def test_decorator_generator_records_its_exception(memory: MemorySink) -> None:
    @event("boom")
    def boom():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("broke")

    with pytest.raises(RuntimeError):
        list(boom())
    (r,) = records(memory)
    assert r["error"] is True
    assert r["error.type"] == "RuntimeError"


def test_decorator_async_generator(memory: MemorySink) -> None:
    @event("stream")
    async def stream(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        return [i async for i in stream(4)]

    assert asyncio.run(main()) == [0, 1, 2, 3]
    (r,) = records(memory)
    assert r["name"] == "stream"


def test_threads_helper_carries_the_current_event(memory: MemorySink) -> None:
    def work(i: int) -> None:
        with event("chunk", i=i):
            add(thread=threading.current_thread().name)

    with event("parallel") as parent, ThreadPoolExecutor(4) as pool:
        list(pool.map(wideevents.with_current_event(work), range(4)))
        # Without the helper the thread starts with no current event:
        pool.submit(lambda: add(lost=True)).result()
    got = records(memory)
    chunks = [r for r in got if r["name"] == "chunk"]
    assert len(chunks) == 4
    assert all(r["parent_id"] == parent.span_id_hex for r in chunks)
    assert "lost" not in next(r for r in got if r["name"] == "parallel")


def test_events_from_many_threads_all_arrive(memory: MemorySink) -> None:
    def burst() -> None:
        for i in range(500):
            with event("t", i=i):
                pass

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(records(memory)) == 4000
    assert wideevents.stats()["emitted"] == 4000


def test_traceparent_is_continued_and_injected(memory: MemorySink) -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ev = event("GET /orders")
    assert ev.continue_trace(incoming)
    with ev, event("call payments") as child:
        headers = wideevents.inject({"accept": "*/*"})
    assert headers["traceparent"] == child.traceparent
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    got = by_name(memory)
    assert got["GET /orders"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert got["GET /orders"]["parent_id"] == "b7ad6b7169203331"
    assert got["call payments"]["parent_id"] == got["GET /orders"]["span_id"]
    assert wideevents.traceparent() is None  # no current event


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ],
)
def test_malformed_traceparent_starts_a_new_trace(memory: MemorySink, bad: str | None) -> None:
    ev = event("op")
    assert not ev.continue_trace(bad)
    with ev:
        pass
    (r,) = records(memory)
    assert r["parent_id"] is None and r["trace_id"] != "0af7651916cd43dd8448eb211c80319c"


def test_finished_events_are_freed_without_the_garbage_collector() -> None:
    # No event refers to itself: a web app's events are freed when the worker is done with
    # them, not left as cyclic garbage for a GC pass on the request path.
    import gc

    from wideevents._event import Event

    class Drop:
        def submit(self, ev: Event) -> None:
            pass

    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            with Event("root", {"a": 1}, Drop()) as root, Event("child", {}, Drop()):
                root.fields["b"] = 2
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_clock_offset_survives_a_preemption_between_its_two_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timestamps are monotonic readings plus this offset: a thread preempted between the
    wall and the monotonic read would shift a whole batch by the time it was away."""
    from wideevents import _event

    # A simulated machine: the wall clock runs 900 s ahead of the monotonic one, every read
    # takes 0.1 us, and the thread is preempted for 5 ms right after its first wall read.
    now = [100.0]
    preempted = []

    def perf() -> float:
        now[0] += 1e-7
        return now[0]

    def wall() -> float:
        now[0] += 1e-7
        at = now[0] + 900.0
        if not preempted:
            preempted.append(True)
            now[0] += 0.005
        return at

    with monkeypatch.context() as m:
        m.setattr(time, "perf_counter", perf)
        m.setattr(time, "time", wall)
        offset = _event.clock_offset()
    assert abs(offset - 900.0) < 1e-6
