"""The cost of one wide event, side by side with a floor and with peer libraries.

Every contender handles the same units of work, each carrying the same 20 fields (strings,
among them a request id that changes every time, ints, floats, bools):

* ``floor``: the least an in-process event can do (keep the dict, two clock reads, a
  contextvar set/reset, a deque append);
* ``floor + JSON line``: the floor, then per event a record (the fields, a timestamp, the
  duration, the name, two random hex ids) as one orjson line, written 1,024 at a time: what any
  JSON-lines event costs before redaction or any care, a reference for the targets;
* ``wideevents``: ``with wideevents.event("op", **fields)`` into a JSON-lines file, default
  redaction on;
* ``OpenTelemetry SDK``: a span with the fields as attributes, BatchSpanProcessor, an exporter
  that does nothing;
* ``structlog``: ``log.info("op", **fields)`` rendered by orjson into memory;
* ``libhoney``: one event per unit of work, written by ``FileTransmission`` into memory;
* ``Logfire``: ``with logfire.span("op", **fields)``, nothing sent anywhere.

Two figures per contender, each the median over rounds of CPU microseconds per event:

* app-thread: ``time.thread_time()`` of the emitting thread across the loop (what the
  request pays; a background worker's CPU is not in it);
* total CPU: ``time.process_time()`` across the loop plus the final flush (every thread: the
  worker's encoding, redaction and writing included).

Rounds are interleaved (round 1 of every contender, then round 2 ...) and the order of the
contenders rotates from round to round, so drift on a noisy machine hits them all alike.

    .venv/bin/python benchmarks/bench_hot_path.py            # 7 rounds of 20,000
    .venv/bin/python benchmarks/bench_hot_path.py --quick    # 3 rounds of 5,000
    .venv/bin/python benchmarks/bench_hot_path.py --json     # and one JSON object at the end
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

Fields = dict[str, Any]

N_FIELDS = 20
FLOOR = "floor"
JSON_FLOOR = "floor + JSON line"
WIDEEVENTS = "wideevents"
OTEL = "OpenTelemetry SDK"
STRUCTLOG = "structlog"
LIBHONEY = "libhoney"
LOGFIRE = "Logfire"

# Nothing in this benchmark may reach the network: OTLP endpoints from the environment
# would make Logfire add an exporter.
for _var in [v for v in os.environ if v.startswith(("OTEL_EXPORTER_OTLP_", "LOGFIRE_"))]:
    del os.environ[_var]


# -- the units of work -------------------------------------------------------------------


def fields(n: int, seed: int) -> Iterator[Fields]:
    """*n* field sets of a checkout request; ``request.id`` is new every time."""
    rng = random.Random(seed)
    for _ in range(n):
        yield {
            "http.method": "POST",
            "http.route": "/api/v1/carts/{cart_id}/checkout",
            "http.status_code": 200 if rng.random() < 0.97 else 503,
            "request.id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user.id": rng.randrange(1, 5_000_000),
            "user.tier": rng.choice(("free", "pro", "enterprise")),
            "user.country": rng.choice(("DE", "FR", "US", "BR", "JP", "IN")),
            "cart.items": rng.randrange(1, 12),
            "cart.total": round(rng.uniform(5.0, 900.0), 2),
            "cart.currency": "EUR",
            "db.calls": rng.randrange(1, 9),
            "db.time_ms": rng.uniform(0.4, 40.0),
            "cache.hit": rng.random() < 0.8,
            "feature.new_checkout": rng.random() < 0.5,
            "payment.provider": rng.choice(("stripe", "adyen", "paypal")),
            "payment.method": rng.choice(("card", "sepa", "wallet")),
            "retry.count": 0 if rng.random() < 0.95 else 1,
            "response.bytes": rng.randrange(200, 5000),
            "cloud.region": "eu-west-1",
            "app.version": "3.14.2",
        }


# -- measuring ---------------------------------------------------------------------------


class Timing(NamedTuple):
    app: float  # seconds of the emitting thread's CPU
    total: float  # seconds of the process's CPU, final flush included


class InvalidMeasurementError(Exception):
    """A round did not do all its work (drops, missing exports): its figures mean nothing."""


def measure(loop: Callable[[], None], finish: Callable[[], object] = lambda: None) -> Timing:
    gc.collect()  # the previous contender's garbage is not this one's to pay for
    p0 = time.process_time()
    t0 = time.thread_time()
    loop()
    t1 = time.thread_time()
    finish()
    p1 = time.process_time()
    return Timing(t1 - t0, p1 - p0)


@dataclass
class Contender:
    name: str
    run: Callable[[list[Fields]], Timing]
    close: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)
    rounds: list[Timing] = field(default_factory=list)


def _null_span_exporter(counter: list[int]) -> Any:
    """An OpenTelemetry exporter that keeps nothing and counts the spans it was given."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class NullExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            counter[0] += len(spans)
            return SpanExportResult.SUCCESS

    return NullExporter()


def _check_exported(name: str, counter: list[int], expected: int) -> None:
    if counter[0] != expected:
        raise InvalidMeasurementError(
            f"{name}: the exporter got {counter[0]} spans, expected {expected} (dropped?)"
        )
    counter[0] = 0


# -- the contenders ----------------------------------------------------------------------

_floor_current: contextvars.ContextVar[Floor | None] = contextvars.ContextVar(
    "floor_current", default=None
)
_floor_queue: deque[Floor] = deque()


class Floor:
    """The same call shape as ``wideevents.event``, doing only what any event must do."""

    __slots__ = ("fields", "name", "t0", "t1", "token")

    def __init__(self, name: str, /, **fields: Any) -> None:
        self.name = name
        self.fields = fields
        self.t0 = self.t1 = 0.0
        self.token: contextvars.Token[Floor | None] | None = None

    def __enter__(self) -> Floor:
        self.token = _floor_current.set(self)
        self.t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.t1 = time.perf_counter()
        if self.token is not None:
            _floor_current.reset(self.token)
        _floor_queue.append(self)


def floor_loop(batch: list[Fields]) -> None:
    for f in batch:
        with Floor("op", **f):
            pass


def setup_floor(n: int, tmp: Path) -> Contender:
    def run(batch: list[Fields]) -> Timing:
        _floor_queue.clear()
        timing = measure(lambda: floor_loop(batch))
        if len(_floor_queue) != len(batch):
            raise InvalidMeasurementError(f"floor: {len(_floor_queue)} events of {len(batch)}")
        _floor_queue.clear()
        return timing

    return Contender(FLOOR, run)


def setup_json_floor(n: int, tmp: Path) -> Contender:
    """The floor, then the least any JSON-lines event writer adds: no redaction, no checks.

    Per event: a copy of the fields with a timestamp (epoch seconds, not ISO text), the
    duration, the name and two random hex ids, one ``orjson.dumps`` appended to a buffer;
    per 1,024 events: one ``write``. A reference for what the total CPU targets leave to
    everything else.
    """
    import orjson

    fd = os.open(tmp / "floor.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    rand = random.Random(0).getrandbits
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    offset = time.time() - time.perf_counter()
    written = [0]

    def finish() -> None:
        events = list(_floor_queue)
        _floor_queue.clear()
        for start in range(0, len(events), 1024):  # batches, as a background writer would
            data = bytearray()  # each line copied at once, so orjson's buffer is reused
            for ev in events[start : start + 1024]:
                record = ev.fields.copy()
                record["timestamp"] = ev.t0 + offset
                record["duration_ms"] = (ev.t1 - ev.t0) * 1000.0
                record["name"] = ev.name
                record["trace_id"] = f"{rand(128):032x}"
                record["span_id"] = f"{rand(64):016x}"
                data += dumps(record, option=newline)
            written[0] += os.write(fd, data)

    def run(batch: list[Fields]) -> Timing:
        _floor_queue.clear()
        before = written[0]
        timing = measure(lambda: floor_loop(batch), finish)
        if written[0] - before < len(batch) * 200:
            raise InvalidMeasurementError(f"{JSON_FLOOR}: {written[0] - before} bytes written")
        return timing

    contender = Contender(JSON_FLOOR, run)
    contender.close = lambda: os.close(fd)
    return contender


def setup_wideevents(n: int, tmp: Path) -> Contender:
    import wideevents
    from wideevents.sinks import JsonLinesSink

    path = tmp / "wideevents.jsonl"
    queue_size = max(50_000, 2 * n)
    wideevents.configure("bench", sinks=[JsonLinesSink(path)], queue_size=queue_size)
    event = wideevents.event
    rounds = [0]

    def loop(batch: list[Fields]) -> None:
        for f in batch:
            with event("op", **f):
                pass

    def run(batch: list[Fields]) -> Timing:
        before = wideevents.stats()
        timing = measure(lambda: loop(batch), wideevents.flush)
        after = wideevents.stats()
        errors = {k: v for k, v in after.items() if k.endswith("errors") and v}
        if after["dropped"] or after["sampled_out"] or errors:
            raise InvalidMeasurementError(f"wideevents: events lost in a round: {after}")
        if after["exported"] - before["exported"] != len(batch):
            raise InvalidMeasurementError(
                f"wideevents: exported grew by {after['exported'] - before['exported']}, "
                f"expected {len(batch)}: {after}"
            )
        rounds[0] += 1
        return timing

    contender = Contender(WIDEEVENTS, run)

    def close() -> None:
        wideevents.flush()
        wideevents.shutdown()
        data = path.read_bytes() if path.exists() else b""
        lines = data.count(b"\n")
        expected = rounds[0] * n
        if lines != expected:
            raise InvalidMeasurementError(
                f"wideevents: {path.name} has {lines} lines, expected {expected}"
            )
        redacted = data.count(b'"meta.redacted"')
        contender.notes.append(
            f"{path.name}: {lines} lines as expected, {redacted} with meta.redacted, "
            f"{len(data) / max(lines, 1):.0f} bytes per line; queue_size={queue_size}"
        )

    contender.close = close
    return contender


def setup_otel(n: int, tmp: Path) -> Contender:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exported = [0]
    provider = TracerProvider()
    # A queue as big as a round, as for wideevents: nothing may be dropped.
    provider.add_span_processor(
        BatchSpanProcessor(_null_span_exporter(exported), max_queue_size=2 * n)
    )
    tracer = provider.get_tracer("bench")

    def loop(batch: list[Fields]) -> None:
        for f in batch:
            with tracer.start_as_current_span("op", attributes=f):
                pass

    def run(batch: list[Fields]) -> Timing:
        timing = measure(lambda: loop(batch), provider.force_flush)
        _check_exported(OTEL, exported, len(batch))
        return timing

    return Contender(OTEL, run, provider.shutdown)


def setup_structlog(n: int, tmp: Path) -> Contender:
    import orjson
    import structlog

    buf = io.BytesIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file=buf),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()

    def loop(batch: list[Fields]) -> None:
        info = log.info
        for f in batch:
            info("op", **f)

    def run(batch: list[Fields]) -> Timing:
        buf.seek(0)
        buf.truncate()
        timing = measure(lambda: loop(batch))
        lines = buf.getvalue().count(b"\n")
        if lines != len(batch):
            raise InvalidMeasurementError(f"structlog: {lines} lines, expected {len(batch)}")
        return timing

    return Contender(STRUCTLOG, run, structlog.reset_defaults)


def setup_libhoney(n: int, tmp: Path) -> Contender:
    import libhoney  # type: ignore[import-untyped]
    from libhoney.transmission import FileTransmission  # type: ignore[import-untyped]

    out = io.StringIO()
    client = libhoney.Client(
        writekey="bench-dummy-key",
        dataset="bench",
        transmission_impl=FileTransmission(output=out),
    )

    def loop(batch: list[Fields]) -> None:
        new_event = client.new_event
        for f in batch:
            ev = new_event(f)
            ev.send()

    def run(batch: list[Fields]) -> Timing:
        out.seek(0)
        out.truncate()
        timing = measure(lambda: loop(batch), client.flush)
        lines = out.getvalue().count("\n")
        if lines != len(batch):
            raise InvalidMeasurementError(f"libhoney: {lines} lines, expected {len(batch)}")
        return timing

    return Contender(
        LIBHONEY,
        run,
        client.close,
        ["FileTransmission serializes (stdlib json) synchronously on the app thread"],
    )


def setup_logfire(n: int, tmp: Path) -> Contender:
    import logfire
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exported = [0]
    logfire.configure(
        send_to_logfire=False,
        console=False,
        # Spans must go somewhere for the whole pipeline to run: an exporter that drops them,
        # behind the same batch processor as the OpenTelemetry contender.
        additional_span_processors=[
            BatchSpanProcessor(_null_span_exporter(exported), max_queue_size=2 * n)
        ],
    )
    span = logfire.span

    def loop(batch: list[Fields]) -> None:
        for f in batch:
            with span("op", **f):
                pass

    def run(batch: list[Fields]) -> Timing:
        timing = measure(lambda: loop(batch), logfire.force_flush)
        _check_exported(LOGFIRE, exported, len(batch))
        return timing

    def close() -> None:
        logfire.shutdown()

    return Contender(
        LOGFIRE,
        run,
        close,
        ["send_to_logfire=False, console=False, default scrubbing, null-exporter BSP"],
    )


SETUPS: tuple[tuple[str, Callable[[int, Path], Contender]], ...] = (
    (FLOOR, setup_floor),
    (JSON_FLOOR, setup_json_floor),
    (WIDEEVENTS, setup_wideevents),
    (OTEL, setup_otel),
    (STRUCTLOG, setup_structlog),
    (LIBHONEY, setup_libhoney),
    (LOGFIRE, setup_logfire),
)
REQUIRED = {FLOOR, WIDEEVENTS}
DISTRIBUTIONS = {
    WIDEEVENTS: "wideevents",
    OTEL: "opentelemetry-sdk",
    STRUCTLOG: "structlog",
    LIBHONEY: "libhoney",
    LOGFIRE: "logfire",
}


# -- the run -----------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _us(seconds: float, n: int) -> float:
    return seconds / n * 1e6


def run_rounds(
    contenders: list[Contender], n: int, rounds: int, skipped: dict[str, str]
) -> list[Contender]:
    """A warm-up round, then *rounds* rounds, interleaved; returns the contenders that lasted."""
    alive = list(contenders)
    for r in range(rounds + 1):
        batch = list(fields(n, seed=r))
        shift = r % len(alive)
        for c in alive[shift:] + alive[:shift]:
            try:
                timing = c.run(batch)
            except InvalidMeasurementError:
                raise
            except Exception as exc:
                if c.name in REQUIRED:
                    raise
                skipped[c.name] = f"failed in round {r}: {type(exc).__name__}: {exc}"
                print(f"skipped: {c.name}: {skipped[c.name]}", flush=True)
                alive.remove(c)
                continue
            if r:  # round 0 warms up
                c.rounds.append(timing)
        label = "warm-up" if r == 0 else f"round {r}/{rounds}"
        print(f"  {label} done", file=sys.stderr, flush=True)
    return alive


@dataclass
class Result:
    name: str
    app_us: float
    total_us: float
    app_rounds: list[float]
    total_rounds: list[float]

    @property
    def spread(self) -> float:
        """(max - min) / median of the total CPU figure, in percent."""
        return (max(self.total_rounds) - min(self.total_rounds)) / self.total_us * 100


def summarise(c: Contender, n: int) -> Result:
    app = [_us(t.app, n) for t in c.rounds]
    total = [_us(t.total, n) for t in c.rounds]
    return Result(c.name, statistics.median(app), statistics.median(total), app, total)


def print_table(results: dict[str, Result]) -> None:
    floor = results[FLOOR]
    we = results[WIDEEVENTS]
    head = (
        f"{'contender':<18} {'app-thread us':>13} {'total CPU us':>12} "
        f"{'app/floor':>9} {'total/floor':>11} {'wideevents/this':>15} {'spread':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results.values():
        print(
            f"{r.name:<18} {r.app_us:>13.2f} {r.total_us:>12.2f} "
            f"{r.app_us / floor.app_us:>9.2f} {r.total_us / floor.total_us:>11.2f} "
            f"{we.total_us / r.total_us:>15.3f} {r.spread:>6.0f}%"
        )
    print(
        "app-thread and total CPU: median over rounds of CPU us per event; "
        "wideevents/this: ratio of total CPU; spread: (max - min) / median of total CPU"
    )


def targets(results: dict[str, Result]) -> list[dict[str, Any]]:
    we = results[WIDEEVENTS]
    out: list[dict[str, Any]] = []
    specs = (
        ("app-thread", "app_us", FLOOR, "floor", 2.0, "{:.2f}"),
        ("total CPU", "total_us", OTEL, "OpenTelemetry SDK span", 0.1, "{:.3f}"),
        ("total CPU", "total_us", STRUCTLOG, "structlog", 0.5, "{:.2f}"),
    )
    reference = results.get(JSON_FLOOR)
    for figure, attr, peer, label, limit, fmt in specs:
        value = getattr(we, attr)
        other = results.get(peer)
        if other is None:
            line = f"{figure}: wideevents {value:.2f} us vs {label}: skipped ({peer} not measured)"
            out.append({"figure": figure, "peer": peer, "target": limit, "pass": None})
            print(line)
            continue
        ratio = value / getattr(other, attr)
        ok = ratio <= limit
        print(
            f"{figure}: wideevents {value:.2f} us = {fmt.format(ratio)} x {label} "
            f"(target <= {limit}) {'PASS' if ok else 'MISS'}"
        )
        if reference is not None and attr == "total_us":
            least = reference.total_us / other.total_us
            print(
                f"  for reference, {JSON_FLOOR}: {reference.total_us:.2f} us = "
                f"{fmt.format(least)} x {label} (nothing but the floor, a record and its line)"
            )
        out.append(
            {
                "figure": figure,
                "peer": peer,
                "wideevents_us": round(value, 4),
                "ratio": round(ratio, 4),
                "target": limit,
                "pass": ok,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5,000 (about 20 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("-n", type=int, help="units of work per round")
    parser.add_argument("-r", "--rounds", type=int, help="measured rounds (after one warm-up)")
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 20_000)
    rounds = args.rounds or (3 if args.quick else 7)
    sample = next(fields(1, seed=0))
    assert len(sample) == N_FIELDS, sorted(sample)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(
        "versions: " + ", ".join(f"{name} {_version(dist)}" for name, dist in DISTRIBUTIONS.items())
    )
    print(f"{rounds} rounds of {n:,} units of work (after 1 warm-up round), {N_FIELDS} fields")

    skipped: dict[str, str] = {}
    contenders: list[Contender] = []
    with tempfile.TemporaryDirectory(prefix="wideevents-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for name, setup in SETUPS:
            try:
                contenders.append(setup(n, tmp))
            except Exception as exc:
                if name in REQUIRED:
                    raise
                skipped[name] = f"{type(exc).__name__}: {exc}"
                print(f"skipped: {name}: {skipped[name]}", flush=True)
        try:
            alive = run_rounds(contenders, n, rounds, skipped)
            for c in contenders:
                try:
                    c.close()
                except InvalidMeasurementError:
                    raise
                except Exception as exc:
                    if c.name in REQUIRED:
                        raise
                    print(f"note: {c.name}: close failed: {type(exc).__name__}: {exc}")
        except InvalidMeasurementError as exc:
            print(f"aborted, the measurement is invalid: {exc}", file=sys.stderr)
            return 2

    results = {c.name: summarise(c, n) for c in alive}
    print()
    print_table(results)
    print()
    for c in alive:
        for note in c.notes:
            print(f"note: {c.name}: {note}")
    for name, reason in skipped.items():
        print(f"skipped: {name}: {reason}")
    print()
    verdicts = targets(results)

    if args.json:
        print(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "n": n,
                    "rounds": rounds,
                    "versions": {k: _version(v) for k, v in DISTRIBUTIONS.items()},
                    "results": {
                        r.name: {
                            "app_us": round(r.app_us, 4),
                            "total_us": round(r.total_us, 4),
                            "app_us_rounds": [round(x, 4) for x in r.app_rounds],
                            "total_us_rounds": [round(x, 4) for x in r.total_rounds],
                        }
                        for r in results.values()
                    },
                    "skipped": skipped,
                    "targets": verdicts,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
