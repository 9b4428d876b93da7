"""What instrumentation costs a real web app: Flask under gunicorn, driven by wrk.

One small Flask app (``http_apps/bench_app.py``: ``GET /users/<int:user_id>`` and ``GET
/items``, each building a dict returned as JSON and handing two fields to its telemetry) is
served by gunicorn with 2 sync workers on loopback, in three variants:

* ``plain``: no instrumentation;
* ``wideevents``: ``WideEvents(app)`` with the default sink, the DuckDB store in a temporary
  folder (``WIDEEVENTS_DB``), its background ingester on, never waiting for a quiet host
  (see below);
* ``OTel flask``: ``opentelemetry-instrumentation-flask`` with a ``TracerProvider`` and a
  ``BatchSpanProcessor`` exporting OTLP/HTTP to ``tests/otlp_receiver.py`` (a local process
  writing one JSON line per span into a temporary file).

Each round starts every variant's gunicorn afresh, warms it up with wrk, then measures one
wrk run (``-t2 -c8``, 10 s; ``--quick`` 3 s) and stops it with SIGTERM, so an idle variant
never runs anything (an ingester, a span export) while another is measured. The background
ingester stays between rounds, as it does beside a long-running app, but runs only during
measured runs: it is paused (SIGSTOP) from the end of one to the start of the next, and
during warm-ups, so all of its work (but what is left after the last round) lands in the
wideevents figures. Rounds are interleaved and the order rotates
from round to round; every figure is the median over rounds:

* requests/s, p50 and p99 latency (wrk's own histogram, reported by a ``done()`` hook);
* gunicorn CPU per request: user + system time of the master and both workers, from
  ``/proc/<pid>/stat`` across the measured run, divided by the requests wrk counted (the
  wideevents worker thread and the OTel export thread live in the workers, so they count);
* side CPU per request: what runs beside the app for it, in other processes: the DuckDB
  ingester (sampled every 0.1 s from ``/proc``), the OTLP receiver for OTel. It is
  reported, not added to the gunicorn figure.

Because the machine's speed drifts, each variant is also compared with ``plain`` round by
round (runs within a minute of each other), and wideevents' p99 is split by whether an
ingester ingested during the run. An ingest run falls due when the oldest waiting segment
is a minute old or 64 MiB wait. By default a run that falls due on a busy host waits for a
quieter moment, up to five minutes or 256 MiB; this benchmark keeps both CPUs busy for less
than that, so with the default every ingest would wait until after the last round. The
``wideevents`` variant therefore sets ``WIDEEVENTS_INGEST_MAX_DEFER=0``: every run when it
falls due, the steady state of load that never lets up, and the figures the targets are
checked on. ``--ingest-waits`` adds a variant with the default, for what load that ends
within the wait costs. In a full run the first ingest falls due after about three rounds;
``--quick`` rounds are too short for one, so quick figures leave the ingester out.

The throughput and p99 verdicts (median against median) are each followed by the same
figure paired by round, with a distribution-free interval for its median: the order
statistics whose binomial coverage is at least 85% (of 7 rounds, the second lowest and
second highest: 87.5%; ``--quick``'s 3 rounds allow no more than 75%). It says whether the
target holds across the interval, is missed across it, or the rounds cannot tell: on this
kind of machine the round-to-round noise is of the order of the targets themselves.

The machine has as many cores as there are workers, so wrk competes with them for CPU: its
own CPU time (``getrusage`` of the child) and the machine's busy share (``/proc/stat``) are
reported per variant. wrk is the same for every variant, so its share is common-mode, and
the gunicorn CPU per request does not depend on it. Anything else on the machine would be
measured as ours: each run waits for idle CPUs first, and a run during which other
processes took more than ``--max-other`` CPUs (CPU busy beyond gunicorn, side and wrk) is
discarded and run again.

After the rounds, each wideevents store is checked with the CLI (``wideevents ingest --db``
after every gunicorn has exited): one event per request the app served, compared with
wrk's count (the warm-up requests included; wrk does not count the few requests still in
flight when it stops, the app's own per-worker counters do).

    .venv/bin/python benchmarks/bench_http.py                  # 7 rounds of 10 s (~7 min)
    .venv/bin/python benchmarks/bench_http.py --quick          # 3 rounds of 3 s
    .venv/bin/python benchmarks/bench_http.py --ingest-off     # and wideevents, no ingester
    .venv/bin/python benchmarks/bench_http.py --ingest-waits   # and the default ingest wait
    .venv/bin/python benchmarks/bench_http.py --breakdown      # and wideevents' parts apart
    .venv/bin/python benchmarks/bench_http.py --json           # and one JSON object at the end
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from wideevents.store.ingest import connect
from wideevents.store.paths import StorePaths

HERE = Path(__file__).resolve().parent
APPS = HERE / "http_apps"
WRK_SCRIPT = APPS / "wrk_report.lua"
RECEIVER = HERE.parent / "tests" / "otlp_receiver.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKERS = 2
ROUTE_EVENTS = ("GET /users/<int:user_id>", "GET /items")

PLAIN = "plain"
WIDEEVENTS = "wideevents"
OTEL = "OTel flask"
WIDEEVENTS_NO_INGEST = "wideevents, ingester off"
WIDEEVENTS_WAITING_INGEST = "wideevents, ingest may wait"
WIDEEVENTS_NULL_SINK = "wideevents, /dev/null"
WIDEEVENTS_REQUEST_ONLY = "wideevents, queue of 1"

DISTRIBUTIONS = (
    "wideevents",
    "flask",
    "gunicorn",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-exporter-otlp-proto-http",
)


class BenchError(Exception):
    """A server or the load generator misbehaved: the figures would mean nothing."""


# -- /proc -------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, is item 0)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of *pid*, in clock ticks; None once it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[11]) + int(fields[12])


def ppid_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def pids_above(floor: int) -> list[int]:
    """Live pids greater than *floor* (new processes get higher pids until pid_max wraps)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) > floor]


class MachineTicks(NamedTuple):
    """Clock ticks of every CPU together, from the first line of ``/proc/stat``."""

    busy: int  # user, nice, system, irq, softirq
    steal: int  # time the hypervisor ran someone else on our vCPUs
    total: int

    @classmethod
    def now(cls) -> MachineTicks:
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = (
                int(v) for v in f.readline().split()[1:9]
            )
        busy = user + nice + system + irq + softirq
        return cls(busy, steal, busy + steal + idle + iowait)  # guest time is inside user


def _proc_file(pid: int, name: str) -> bytes:
    """``/proc/<pid>/<name>``; empty once the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _names_ingester_of(argv: list[bytes], db: Path) -> bool:
    """Whether *argv* is an ingester's (``wideevents.store.background`` or ``.ingest``) of
    *db*."""
    named = b"wideevents.store.background" in argv or b"wideevents.store.ingest" in argv
    return named and str(db).encode() in argv


def _has_duckdb(pid: int) -> bool:
    """Whether *pid* has DuckDB's library loaded (an ingester imports it only to ingest)."""
    return b"duckdb" in _proc_file(pid, "maps")


def ingester_pids(db: Path) -> list[int]:
    """Every running ingester of *db*."""
    return [
        pid
        for pid in pids_above(0)
        if _names_ingester_of(_proc_file(pid, "cmdline").split(b"\0"), db)
    ]


def signal_ingesters(db: Path, sig: int) -> None:
    for pid in ingester_pids(db):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_ingesters(db: Path, timeout: float = 300) -> None:
    """Let the ingesters of *db* go on if paused, end them (SIGTERM) and wait until gone."""
    signal_ingesters(db, signal.SIGCONT)
    signal_ingesters(db, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while ingester_pids(db):
        if time.monotonic() > deadline:
            raise BenchError(f"an ingester of {db} outlived SIGTERM by {timeout:g} s")
        time.sleep(0.05)


class IngesterWatch:
    """Samples the ingesters of *db* every *period* seconds while a measured run lasts: the
    staying one and any started inside the window. Their CPU inside the window, and the
    ingests: stretches of samples in which they used 3 or more clock ticks with DuckDB
    loaded (a start-up that imports wideevents, or a wake-up between runs, is not one)."""

    def __init__(self, db: Path, period: float = 0.1, *, freeze: bool = False) -> None:
        self.db = db
        self.period = period
        self.freeze = freeze  # pause (SIGSTOP) every ingester seen, as soon as it is seen
        self.base: dict[int, int] = {}  # ticks at the window's start (0: started inside)
        self.last: dict[int, int] = {}
        self.others: set[int] = set()  # pids that are not ingesters of db
        self.runs = 0
        self.busy = 0.0  # seconds of the window during which an ingester was using CPU
        self._stretch = (0, 0)  # the current stretch of samples with CPU used: (samples, ticks)
        self._stretch_pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingester-watch", daemon=True)

    def _sample(self, at_start: bool = False) -> None:
        used = 0
        for pid in pids_above(0):
            if pid in self.others:
                continue
            if pid not in self.last:
                argv = _proc_file(pid, "cmdline").split(b"\0")
                if not _names_ingester_of(argv, self.db):
                    if not any(b"gunicorn" in a for a in argv):  # (a worker's child, not
                        self.others.add(pid)  # yet exec'd, is looked at again)
                    continue
            if self.freeze:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            ticks = cpu_ticks(pid)
            if ticks is None:
                continue
            if pid not in self.last:
                self.base[pid] = ticks if at_start else 0
                self.last[pid] = self.base[pid]
            if ticks > self.last[pid]:
                used += ticks - self.last[pid]
                self._stretch_pids.add(pid)
            self.last[pid] = ticks
        samples, ticks_used = self._stretch
        if used:
            self._stretch = (samples + 1, ticks_used + used)
        else:
            self._end_stretch()

    def _end_stretch(self) -> None:
        # An ingest, not a wake-up between runs (which may cross one tick boundary).
        samples, ticks_used = self._stretch
        if ticks_used >= 3 and any(_has_duckdb(pid) for pid in self._stretch_pids):
            self.runs += 1
            self.busy += samples * self.period
        self._stretch = (0, 0)
        self._stretch_pids.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def start(self) -> None:
        self._sample(at_start=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._end_stretch()

    @property
    def cpu(self) -> float:
        return sum(self.last[p] - self.base[p] for p in self.last) / CLK_TCK


# -- the processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BenchError(f"{what} did not start") from None
            time.sleep(0.05)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any telemetry settings of the caller's, plus *extra*."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_", "BENCH_"))
    }
    env.update(extra)
    return env


class Receiver:
    """``tests/otlp_receiver.py``: one process for the whole run, spans into *out*."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), str(self.port), str(out)],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "the OTLP receiver")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def cpu_ticks(self) -> int:
        ticks = cpu_ticks(self.proc.pid)
        if ticks is None:
            raise BenchError("the OTLP receiver died")
        return ticks

    def spans(self) -> int:
        if not self.out.exists():
            return 0
        with open(self.out, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Variant:
    name: str
    app: str  # BENCH_VARIANT
    folder: Path  # its own temporary folder: store, served counts, gunicorn's log
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path | None:
        db = self.env.get("WIDEEVENTS_DB")
        return Path(db) if db else None

    @property
    def counts(self) -> Path:
        return self.folder / "served"


class Server:
    """gunicorn, 2 sync workers, on a fresh loopback port."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.port = free_port()
        self.log = open(variant.folder / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(APPS),
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
            "bench_app:app",
        ]
        env = clean_env(
            BENCH_VARIANT=variant.app, BENCH_COUNT_DIR=str(variant.counts), **variant.env
        )
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log)
        self.workers = self._start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> list[int]:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    resp.read()
                workers = [p for p in pids_above(self.proc.pid) if ppid_of(p) == self.proc.pid]
                if len(workers) == WORKERS:
                    return sorted(workers)
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise BenchError(
                    f"gunicorn ({self.variant.name}) did not start: see {self.log.name}"
                )
            time.sleep(0.05)

    def cpu_ticks(self) -> int:
        total = 0
        for pid in [self.proc.pid, *self.workers]:
            ticks = cpu_ticks(pid)
            if ticks is None:
                raise BenchError(f"a gunicorn process of {self.variant.name} died (pid {pid})")
            total += ticks
        return total

    def stop(self) -> None:
        """SIGTERM, as a deployment would: the workers finish, flush and exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise BenchError(f"gunicorn ({self.variant.name}) ignored SIGTERM") from None
        self.log.close()
        if self.proc.returncode != 0:
            raise BenchError(
                f"gunicorn ({self.variant.name}) exited with {self.proc.returncode}: "
                f"see {self.log.name}"
            )


@dataclass
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: float  # seconds of wrk's own CPU

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run_wrk(url: str, seconds: float, connections: int, threads: int) -> WrkRun:
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    errors = {k: r[k] for k in r if k.endswith(("_errors", "timeouts")) and r[k]}
    if errors:
        raise BenchError(f"wrk saw errors against {url}: {errors}\n{proc.stdout}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkRun(r["requests"], r["duration_us"] / 1e6, r["p50_us"] / 1e3, r["p99_us"] / 1e3, cpu)


# -- one round ---------------------------------------------------------------------------


@dataclass
class Round:
    variant: str
    index: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    warmup_requests: int
    gunicorn_us: float  # gunicorn CPU per request
    side_us: float  # ingester or receiver CPU per request
    wrk_us: float  # the load generator's CPU per request
    machine_busy: float  # share of all CPUs busy during the run (steal not included)
    steal: float  # share of all CPUs the hypervisor gave to someone else
    other_cpus: float  # CPUs busy beyond gunicorn, side and wrk (kernel, this script, others)
    ingester_runs: int = 0
    ingester_busy: float = 0.0  # seconds of the run with an ingester using CPU
    discarded: bool = False  # something outside the benchmark took CPU: run again


@dataclass
class Settings:
    rounds: int
    seconds: float
    warmup: float
    connections: int
    threads: int
    max_other: float  # CPUs that others may use during a run before it is run again
    retries: int = 4


def wait_for_quiet(max_cpus: float, timeout: float = 900) -> float:
    """Wait until the machine's CPUs are idle (less than *max_cpus* busy over a second):
    another process's load would be measured as ours. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        m0 = MachineTicks.now()
        time.sleep(1.0)
        m1 = MachineTicks.now()
        if (m1.busy - m0.busy) / CLK_TCK < max_cpus or time.monotonic() - t0 > timeout:
            return time.monotonic() - t0


def measure_round(
    variant: Variant, index: int, settings: Settings, receiver: Receiver | None
) -> Round:
    db = variant.db or variant.folder  # (no ingester in a folder without a store)
    server = Server(variant)
    try:
        # The background ingester runs only inside measured runs: paused from the end of
        # one to the start of the next, and paused if it starts during the warm-up.
        freezer = IngesterWatch(db, freeze=True)
        freezer.start()
        try:
            warm = run_wrk(server.url, settings.warmup, settings.connections, settings.threads)
        finally:
            freezer.stop()
        watch = IngesterWatch(db)
        side0 = receiver.cpu_ticks() if receiver and variant.app == "otel" else 0
        m0 = MachineTicks.now()
        cpu0 = server.cpu_ticks()
        signal_ingesters(db, signal.SIGCONT)
        watch.start()
        run = run_wrk(server.url, settings.seconds, settings.connections, settings.threads)
        signal_ingesters(db, signal.SIGSTOP)
        watch.stop()
        cpu1 = server.cpu_ticks()
        m1 = MachineTicks.now()
        side1 = receiver.cpu_ticks() if receiver and variant.app == "otel" else 0
    finally:
        server.stop()
        # It stays, as it would beside a long-running app, paused until this variant's next
        # measured run (also one the app started after this run, at its last flushes).
        signal_ingesters(db, signal.SIGSTOP)
    os.sync()  # the spool's dirty pages are written back now, not during the next round
    per_request = 1e6 / run.requests
    gunicorn = (cpu1 - cpu0) / CLK_TCK
    side = (side1 - side0) / CLK_TCK + watch.cpu
    total = max(m1.total - m0.total, 1)
    busy = (m1.busy - m0.busy) / CLK_TCK
    return Round(
        variant=variant.name,
        index=index,
        rps=run.rps,
        p50_ms=run.p50_ms,
        p99_ms=run.p99_ms,
        requests=run.requests,
        warmup_requests=warm.requests,
        gunicorn_us=gunicorn * per_request,
        side_us=side * per_request,
        wrk_us=run.cpu * per_request,
        machine_busy=(m1.busy - m0.busy) / total,
        steal=(m1.steal - m0.steal) / total,
        other_cpus=(busy - gunicorn - side - run.cpu) / run.seconds,
        ingester_runs=watch.runs,
        ingester_busy=watch.busy,
    )


def measure_quietly(
    variant: Variant, index: int, settings: Settings, receiver: Receiver
) -> list[Round]:
    """Measure a round on a quiet machine; a run during which other processes took more
    than ``max_other`` CPUs is discarded and run again. Returns every attempt, the
    discarded ones included (their requests are in the store too)."""
    attempts: list[Round] = []
    for _ in range(settings.retries + 1):
        waited = wait_for_quiet(settings.max_other)
        if waited > 5:
            print(f"  (waited {waited:.0f} s for other processes to leave the CPUs idle)")
        x = measure_round(variant, index, settings, receiver)
        attempts.append(x)
        if x.other_cpus <= settings.max_other:
            return attempts
        x.discarded = True
        print(
            f"  round {index} {variant.name}: discarded, other processes used "
            f"{x.other_cpus:.2f} CPUs ({x.rps:,.0f} req/s); running it again",
            flush=True,
        )
    raise BenchError(f"the machine never stayed quiet for {settings.retries + 1} runs")


def run_rounds(variants: list[Variant], settings: Settings, receiver: Receiver) -> list[Round]:
    """One round of every variant, then the next, the order rotating from round to round."""
    rounds: list[Round] = []
    for r in range(settings.rounds):
        shift = r % len(variants)
        for v in variants[shift:] + variants[:shift]:
            rounds += measure_quietly(v, r + 1, settings, receiver)
            x = rounds[-1]
            extra = (
                f"  ingester {x.ingester_runs} run(s), {x.ingester_busy:.1f} s"
                if v.db is not None and v.env.get("WIDEEVENTS_INGEST_INTERVAL") != "0"
                else ""
            )
            print(
                f"  round {r + 1}/{settings.rounds} {v.name:<24} {x.rps:6,.0f} req/s "
                f"p50 {x.p50_ms:5.3f} p99 {x.p99_ms:5.2f} ms  us/req: gunicorn "
                f"{x.gunicorn_us:3.0f} side {x.side_us:2.0f} wrk {x.wrk_us:2.0f}  "
                f"other {x.other_cpus:4.2f} CPU steal {x.steal:3.0%}{extra}",
                flush=True,
            )
    return rounds


# -- the summary -------------------------------------------------------------------------


@dataclass
class Summary:
    name: str
    rounds: list[Round]

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.rounds)

    def spread(self, attr: str) -> float:
        """(max - min) / median, in percent."""
        values = [getattr(r, attr) for r in self.rounds]
        return (max(values) - min(values)) / statistics.median(values) * 100


def print_table(summaries: dict[str, Summary]) -> None:
    head = (
        f"{'variant':<25} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'gunicorn us/req':>15} "
        f"{'side us/req':>11} {'wrk us/req':>10} {'CPUs busy':>9} {'other CPUs':>10} "
        f"{'steal':>5} {'req/s spread':>12}"
    )
    print(head)
    print("-" * len(head))
    for s in summaries.values():
        print(
            f"{s.name:<25} {s.median('rps'):>7,.0f} {s.median('p50_ms'):>7.3f} "
            f"{s.median('p99_ms'):>7.2f} {s.median('gunicorn_us'):>15.0f} "
            f"{s.median('side_us'):>11.0f} {s.median('wrk_us'):>10.0f} "
            f"{s.median('machine_busy'):>9.0%} {s.median('other_cpus'):>10.2f} "
            f"{s.median('steal'):>5.0%} {s.spread('rps'):>11.1f}%"
        )
    print(
        "medians over rounds. gunicorn: CPU of the master and both workers; side: CPU of the\n"
        "DuckDB ingester (wideevents) or the OTLP receiver (OTel); wrk: the load generator's\n"
        "CPU; CPUs busy: share of all CPUs; other CPUs: CPUs busy beyond those three (kernel\n"
        "network work not charged to a process, this script, anything else on the machine);\n"
        "steal: share taken by the hypervisor; spread: (max - min) / median of req/s"
    )


def median_interval(values: list[float], level: float = 0.85) -> tuple[float, float, float]:
    """A distribution-free interval for the median of what *values* sample: the order
    statistics ``x(k)`` and ``x(n+1-k)`` for the largest k whose coverage (the chance that the
    true median lies between them, from the binomial distribution of how many samples fall
    below it) is at least *level*. Too few values for that (fewer than 4 at 85%: 3 give
    75%) give the lowest and the highest, with the coverage they have. Returns (low, high,
    coverage)."""
    xs = sorted(values)
    n = len(xs)
    best = (xs[0], xs[-1], 1 - 2 * 0.5**n)
    for k in range(2, n // 2 + 1):
        coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
        if coverage < level:
            break
        best = (xs[k - 1], xs[n - k], coverage)
    return best


def paired(a: Summary, b: Summary, attr: str) -> list[float]:
    """Round by round, *a*'s figure over *b*'s (measured within a minute of each other)."""
    theirs = {r.index: getattr(r, attr) for r in b.rounds}
    return [getattr(r, attr) / theirs[r.index] for r in a.rounds if r.index in theirs]


def print_notes(summaries: dict[str, Summary]) -> dict[str, Any]:
    """Figures that resist drift (paired by round) and where wideevents' tail comes from."""
    plain = summaries[PLAIN]
    out: dict[str, Any] = {}
    for s in summaries.values():
        if s is plain:
            continue
        rps = paired(s, plain, "rps")
        p99 = paired(s, plain, "p99_ms")
        cpu = [x - 1 for x in paired(s, plain, "gunicorn_us")]
        print(
            f"paired with plain by round: {s.name}: req/s x{statistics.median(rps):.3f} "
            f"({min(rps):.3f}-{max(rps):.3f}), p99 x{statistics.median(p99):.2f} "
            f"({min(p99):.2f}-{max(p99):.2f}), gunicorn CPU/req {statistics.median(cpu):+.1%}"
        )
        out[s.name] = {"rps_ratio": rps, "p99_ratio": p99}
    for name in (WIDEEVENTS, WIDEEVENTS_WAITING_INGEST):
        if name not in summaries:
            continue
        busy = [r.p99_ms for r in summaries[name].rounds if r.ingester_runs]
        idle = [r.p99_ms for r in summaries[name].rounds if not r.ingester_runs]
        med = {"with": statistics.median(busy) if busy else None}
        med["without"] = statistics.median(idle) if idle else None
        text = {k: "-" if v is None else f"{v:.2f} ms" for k, v in med.items()}
        print(
            f"{name} p99 in rounds with an ingester running: {text['with']} ({len(busy)} "
            f"rounds), without: {text['without']} ({len(idle)} rounds)"
        )
        out[f"{name}: p99_with_without_ingester"] = med
    return out


def targets(summaries: dict[str, Summary]) -> list[dict[str, Any]]:
    plain, we, otel = summaries[PLAIN], summaries[WIDEEVENTS], summaries[OTEL]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    def settled(low: float, high: float, target: float) -> str:
        if high <= target:
            return "met in the whole interval"
        if low > target:
            return "missed in the whole interval"
        return "the rounds cannot tell"

    loss = (1 - we.median("rps") / plain.median("rps")) * 100
    ok_loss = loss <= 5
    print(f"throughput: wideevents loses {loss:.1f}% vs plain (target <= 5%) {verdict(ok_loss)}")
    # The same figures paired round by round, with how sure the rounds make them: the
    # machine's noise is of the order of the targets, so one median can pass or miss by luck.
    lost = [(1 - r) * 100 for r in paired(we, plain, "rps")]
    loss_lo, loss_hi, loss_cover = median_interval(lost)
    print(
        f"  paired by round: loses {statistics.median(lost):.1f}%, {loss_cover:.0%} interval "
        f"{loss_lo:.1f}% to {loss_hi:.1f}%: {settled(loss_lo, loss_hi, 5)}"
    )

    added_we = we.median("p50_ms") - plain.median("p50_ms")
    added_otel = otel.median("p50_ms") - plain.median("p50_ms")
    ratio = added_we / added_otel if added_otel > 0 else float("inf")
    ok_added = ratio <= 0.25
    print(
        f"added latency: wideevents {added_we:+.3f} ms vs OTel flask {added_otel:+.3f} ms "
        f"= {ratio:.2f} x (target <= 0.25) {verdict(ok_added)}"
    )

    p99 = we.median("p99_ms")
    p99_ratio = p99 / plain.median("p99_ms")
    ok_p99 = p99_ratio <= 1.25
    print(
        f"p99: wideevents {p99:.2f} ms = {p99_ratio:.2f} x plain (target <= 1.25) {verdict(ok_p99)}"
    )
    ratios = paired(we, plain, "p99_ms")
    p99_lo, p99_hi, p99_cover = median_interval(ratios)
    print(
        f"  paired by round: {statistics.median(ratios):.2f} x, {p99_cover:.0%} interval "
        f"{p99_lo:.2f} to {p99_hi:.2f} x: {settled(p99_lo, p99_hi, 1.25)}"
    )
    return [
        {
            "figure": "throughput loss %",
            "value": round(loss, 2),
            "target": 5,
            "pass": ok_loss,
            "paired_interval": [round(loss_lo, 2), round(loss_hi, 2), round(loss_cover, 3)],
        },
        {
            "figure": "added p50 latency ratio",
            "wideevents_ms": round(added_we, 4),
            "otel_ms": round(added_otel, 4),
            "value": round(ratio, 4),
            "target": 0.25,
            "pass": ok_added,
        },
        {
            "figure": "p99 ratio",
            "value": round(p99_ratio, 4),
            "target": 1.25,
            "pass": ok_p99,
            "paired_interval": [round(p99_lo, 4), round(p99_hi, 4), round(p99_cover, 3)],
        },
    ]


# -- the checks --------------------------------------------------------------------------


def served(variant: Variant) -> int:
    return sum(int(p.read_text()) for p in variant.counts.glob("*.count"))


def cli_ingest(db: Path) -> tuple[str, float]:
    """``wideevents ingest --db DB``: its output and its CPU seconds."""
    cli = Path(sys.executable).with_name("wideevents")
    args = [str(cli)] if cli.exists() else [sys.executable, "-m", "wideevents.cli"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*args, "ingest", "--db", str(db)], capture_output=True, text=True, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"wideevents ingest failed: {proc.stdout}{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout.strip(), cpu


def store_counts(db: Path) -> tuple[int, int, dict[str, int]]:
    """(events, distinct span ids, events by name) in the store *db*."""
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=False, timeout=30):
        con = connect(paths, read_only=True)
        try:
            row = con.execute("SELECT count(*), count(DISTINCT span_id) FROM events").fetchone()
            names = con.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall()
        finally:
            con.close()
    assert row is not None
    return int(row[0]), int(row[1]), {str(n): int(c) for n, c in names}


def check_store(variant: Variant, rounds: list[Round], connections: int) -> dict[str, Any]:
    """One event per request served, after SIGTERM and ``wideevents ingest``."""
    assert variant.db is not None
    stop_ingesters(variant.db)
    spool_bytes = sum(p.stat().st_size for p in StorePaths.for_db(variant.db).spool.glob("*.jsonl"))
    ingested, ingest_cpu = cli_ingest(variant.db)
    events, distinct, names = store_counts(variant.db)
    mine = [r for r in rounds if r.variant == variant.name]
    measured = sum(r.requests for r in mine)
    warmup = sum(r.warmup_requests for r in mine)
    app_served = served(variant)
    in_flight = app_served - measured - warmup
    # wrk stops with up to one request per connection in flight, twice a round (warm-up, run)
    ok = (
        events == app_served == distinct
        and set(names) <= set(ROUTE_EVENTS)
        and 0 <= in_flight <= 2 * connections * len(mine)
    )
    left = int(ingested.split()[1]) if ingested.startswith("ingested ") else 0
    print(
        f"store check ({variant.name}): `wideevents ingest`: {ingested} "
        f"({spool_bytes / max(left, 1):.0f} spooled bytes and "
        f"{ingest_cpu / max(left, 1) * 1e6:.0f} us of ingest CPU per event)"
    )
    print(
        f"  events in the store: {events:,}; requests wrk counted: {measured + warmup:,} "
        f"({measured:,} measured + {warmup:,} warm-up); served by the app's views: "
        f"{app_served:,} (+{in_flight} in flight when wrk stopped) "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    if not ok:
        print(f"  distinct span ids {distinct:,}; by name: {names}")
    return {
        "variant": variant.name,
        "events": events,
        "distinct_span_ids": distinct,
        "wrk_requests": measured + warmup,
        "warmup_requests": warmup,
        "served": app_served,
        "ok": ok,
        "ingest_cpu_us_per_event": round(ingest_cpu / max(left, 1) * 1e6, 2),
        "spooled_bytes_per_event": round(spool_bytes / max(left, 1), 1),
    }


def check_receiver(variant: Variant, receiver: Receiver) -> dict[str, Any]:
    spans = receiver.spans()
    app_served = served(variant)
    print(
        f"receiver check ({variant.name}): {spans:,} spans received for {app_served:,} "
        f"requests served {'OK' if spans == app_served else '(spans dropped or lost)'}"
    )
    return {"variant": variant.name, "spans": spans, "served": app_served}


# -- the run -----------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def make_variants(
    tmp: Path, ingest_off: bool, breakdown: bool = False, ingest_waits: bool = False
) -> list[Variant]:
    variants = [
        Variant(PLAIN, "plain", tmp / "plain"),
        Variant(
            WIDEEVENTS,
            "wideevents",
            tmp / "wideevents",
            {
                "WIDEEVENTS_DB": str(tmp / "wideevents" / "events.duckdb"),
                "WIDEEVENTS_INGEST_MAX_DEFER": "0",  # ingest as load that never lets up
            },
        ),
        Variant(OTEL, "otel", tmp / "otel"),
    ]
    if breakdown:  # where wideevents' cost goes, by taking its parts away
        variants += [
            Variant(
                WIDEEVENTS_REQUEST_ONLY,
                "wideevents",
                tmp / "wideevents-request-only",
                {"WIDEEVENTS_SINKS": "jsonl:/dev/null", "WIDEEVENTS_QUEUE_SIZE": "1"},
            ),
            Variant(
                WIDEEVENTS_NULL_SINK,
                "wideevents",
                tmp / "wideevents-null-sink",
                {"WIDEEVENTS_SINKS": "jsonl:/dev/null"},
            ),
        ]
    if ingest_off or breakdown:
        folder = tmp / "wideevents-no-ingest"
        variants.append(
            Variant(
                WIDEEVENTS_NO_INGEST,
                "wideevents",
                folder,
                {"WIDEEVENTS_DB": str(folder / "events.duckdb"), "WIDEEVENTS_INGEST_INTERVAL": "0"},
            )
        )
    if ingest_waits:
        folder = tmp / "wideevents-waiting-ingest"
        variants.append(
            Variant(
                WIDEEVENTS_WAITING_INGEST,
                "wideevents",
                folder,
                {"WIDEEVENTS_DB": str(folder / "events.duckdb")},
            )
        )
    for v in variants:
        v.counts.mkdir(parents=True)
        v.env["WIDEEVENTS_SERVICE"] = "bench"
    return variants


@contextmanager
def otlp_receiver(out: Path) -> Iterator[Receiver]:
    receiver = Receiver(out)
    try:
        yield receiver
    finally:
        receiver.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s (about 1 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("-r", "--rounds", type=int, help="measured rounds (default 7; quick 3)")
    parser.add_argument("-d", "--duration", type=float, help="seconds per run (10; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of wrk before each run (2; quick 1)")
    parser.add_argument("-c", "--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.15,
        help="CPUs other processes may use during a run before it is discarded (0.15)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="three more variants that take wideevents' parts away: the ingester (ingester "
        "off), the store (JSON lines to /dev/null), the encoding (a queue of one: nearly "
        "every event dropped at the queue, so the request thread's share alone)",
    )
    parser.add_argument(
        "--ingest-waits",
        action="store_true",
        help="a fourth variant: wideevents with the default ingest wait (a run that falls due "
        "on a busy host waits up to five minutes); the main variant's never waits",
    )
    parser.add_argument(
        "--ingest-off",
        action="store_true",
        help="a fourth variant: wideevents with WIDEEVENTS_INGEST_INTERVAL=0 (what-if)",
    )
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so the paused ingesters are resumed and ended on the way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = Settings(
        rounds=args.rounds or (3 if args.quick else 7),
        seconds=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup or (1.0 if args.quick else 2.0),
        connections=args.connections,
        threads=args.threads,
        max_other=args.max_other,
    )
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2

    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"{shutil.which('wrk')}"
    )
    print("versions: " + ", ".join(f"{d} {_version(d)}" for d in DISTRIBUTIONS))
    print(
        f"gunicorn: {WORKERS} sync workers; wrk -t{settings.threads} -c{settings.connections}: "
        f"{settings.rounds} rounds of {settings.seconds:g} s per variant "
        f"(after {settings.warmup:g} s of warm-up each)"
    )

    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wideevents-bench-http-") as tmpdir:
        tmp = Path(tmpdir)
        variants = make_variants(tmp, args.ingest_off, args.breakdown, args.ingest_waits)
        try:
            with otlp_receiver(tmp / "spans.jsonl") as receiver:
                variants[2].env["BENCH_OTLP_ENDPOINT"] = receiver.endpoint
                rounds = run_rounds(variants, settings, receiver)
                otel_check = check_receiver(variants[2], receiver)
            print()
            for v in variants:
                if v.db is not None:
                    checks.append(check_store(v, rounds, settings.connections))
            checks.append(otel_check)
        except BenchError as exc:
            print(f"aborted, the measurement is invalid: {exc}", file=sys.stderr)
            return 2
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one would stop the cleanup
            for v in variants:
                if v.db is not None:
                    stop_ingesters(v.db)

    summaries = {
        v.name: Summary(v.name, [r for r in rounds if r.variant == v.name and not r.discarded])
        for v in variants
    }
    print()
    print_table(summaries)
    print()
    notes = print_notes(summaries)
    print()
    verdicts = targets(summaries)

    if args.json:
        print(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "settings": vars(settings),
                    "versions": {d: _version(d) for d in DISTRIBUTIONS},
                    "results": {
                        s.name: {
                            attr: round(s.median(attr), 4)
                            for attr in ("rps", "p50_ms", "p99_ms", "gunicorn_us", "side_us")
                        }
                        for s in summaries.values()
                    },
                    "rounds": [vars(r) for r in rounds],
                    "checks": checks,
                    "notes": notes,
                    "targets": verdicts,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
