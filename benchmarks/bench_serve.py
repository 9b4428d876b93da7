"""`wideevents serve`: OTLP spans/s into the store, and the UI's API round trips on 10M events.

Two measurements, each against a real ``wideevents serve`` process on loopback:

1. **OTLP ingest.** ``--clients`` processes (default 4) each build ``--spans`` spans (default
   50,000) with the Python OpenTelemetry SDK (a server span with 12 attributes, from a
   resource with 4) and encode them with the OTLP exporter's own encoder in batches of 512,
   before the clock starts, so the clock measures the receiver and not span creation. Then all
   clients POST their batches at once, each over one keep-alive connection, as the OTLP/HTTP
   exporter does (protobuf, gzip: what ``OTEL_EXPORTER_OTLP_COMPRESSION=gzip`` sends).
   Reported: spans/s **accepted** (answered 200, which serve sends only once the spans are
   redacted and written to the spool) from the first request to the last answer; then the
   time to **ingest** them into DuckDB (the next API call does it) and spans/s end to end
   (accepted + ingested), checked against the exact count in the store. The clients share the
   machine's two cores with the server.
2. **UI round trips on 10M events.** The store ``bench_query.py`` generates (10M web requests,
   24 hours, a bad build planted on two hosts), reused from ``--data`` when present (else
   generated there first, ~1.5 min). The requests the UI makes for one view, timed from
   request to the last byte of the response: the heatmap of ``duration_ms`` over the day
   (``granularity=auto``), the results table (count and p99 by route), the breakdown of a
   box (the last 6 hours at or above the p99 of ``duration_ms``, against the rest), and the
   events behind the box. Medians over ``--runs`` after a warm-up.

    .venv/bin/python benchmarks/bench_serve.py --data .bench-data
    .venv/bin/python benchmarks/bench_serve.py --quick          # fewer spans, 1M events
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
BATCH = 512


# -- the client processes ---------------------------------------------------------------------


def client(url: str, spans: int, index: int) -> None:
    """Build and encode *spans* spans, say ``ready``, wait for ``go`` on stdin, send them."""
    import requests
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    finished: list[Any] = []

    class Keep(SpanExporter):
        def export(self, batch: Any) -> SpanExportResult:
            finished.extend(batch)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": f"bench-client-{index}",
                "service.version": "1.2.3",
                "deployment.environment.name": "bench",
                "host.name": f"bench-host-{index}",
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = provider.get_tracer("bench", "1.0")
    for i in range(spans):
        with tracer.start_as_current_span(
            "GET /api/items/{id}",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/api/items/{id}",
                "url.path": f"/api/items/{i % 5000}",
                "url.scheme": "https",
                "http.response.status_code": 200 if i % 50 else 500,
                "server.address": "api.example.com",
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) bench",
                "client.address": f"10.0.{i % 250}.{i % 200}",
                "user.id": i % 20_000,
                "db.calls": i % 7,
                "db.time_ms": (i % 97) * 0.37,
                "cache.hit": i % 3 == 0,
            },
        ):
            pass
    bodies = [
        gzip.compress(encode_spans(finished[k : k + BATCH]).SerializeToString(), 1)
        for k in range(0, len(finished), BATCH)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    session = requests.Session()
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    for body in bodies:
        r = session.post(url + "/v1/traces", data=body, headers=headers, timeout=60)
        if r.status_code != 200:
            print(f"error {r.status_code} {r.content[:200]!r}", flush=True)
            sys.exit(1)
    print("done", flush=True)


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "wideevents.cli", "serve", "--db", str(db)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as resp:
                    resp.read()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("wideevents serve did not start") from None
                time.sleep(0.05)

    def get(self, path: str, params: dict[str, Any]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        url = self.url + path + "?" + urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=600) as resp:
            body = resp.read()
        return time.perf_counter() - t0, json.loads(body)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


# -- 1. OTLP ingest ----------------------------------------------------------------------------


def bench_ingest(clients: int, spans: int, tmp: Path) -> dict[str, float]:
    db = tmp / "otlp.duckdb"
    server = Serve(db)
    procs = []
    try:
        for k in range(clients):
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--client", server.url, str(spans), str(k)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "done":
                raise RuntimeError(f"a client failed: {line}")
        accepted = time.perf_counter() - t0
        for p in procs:
            p.wait(60)
        t1 = time.perf_counter()
        _, rows = server.get("/api/query", {"calc": "count"})  # ingests what is spooled
        ingest = time.perf_counter() - t1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.stop()
    total = clients * spans
    stored = int(rows[0]["count"])
    if stored != total:
        raise RuntimeError(f"sent {total} spans, the store holds {stored}")
    return {
        "spans": total,
        "accepted_s": accepted,
        "accepted_per_s": total / accepted,
        "ingest_s": ingest,
        "end_to_end_per_s": total / (accepted + ingest),
    }


# -- 2. UI round trips on 10M events -----------------------------------------------------------


def large_store(data: Path, n: int) -> tuple[Path, float]:
    """bench_query's store of *n* events in *data* (generated there when missing); its p99."""
    sys.path.insert(0, str(HERE))
    import bench_query as bq

    d = data / f"serve-{n}"
    meta = d / "dataset.json"
    try:
        kept = json.loads(meta.read_text())
        if kept["version"] == bq.GENERATOR_VERSION and kept["n"] == n:
            return d / "store.duckdb", float(kept["p99"])
    except (FileNotFoundError, ValueError, KeyError):
        pass
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    print(f"generating {n:,} events into {d} …", file=sys.stderr)
    p99, _share = bq.generate_store(d / "store.duckdb", n)
    meta.write_text(json.dumps({"version": bq.GENERATOR_VERSION, "n": n, "p99": p99}))
    return d / "store.duckdb", p99


def bench_ui(db: Path, p99: float, runs: int) -> dict[str, list[float]]:
    server = Serve(db)
    try:
        _, bounds = server.get("/api/events", {"order": "timestamp", "limit": 1})
        last = datetime.fromisoformat(bounds[0]["timestamp"].replace("Z", "+00:00"))
        box_from = (last - timedelta(hours=6)).astimezone(timezone.utc)
        box = [
            f"timestamp >= {box_from.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            f"duration_ms >= {p99!r}",
        ]
        requests = {
            "heatmap (24 h, auto granularity)": (
                "/api/query",
                {"calc": "heatmap(duration_ms)", "granularity": "auto", "limit": 10000},
            ),
            "results (count, p99 by route)": (
                "/api/query",
                {"calc": ["count", "p99(duration_ms)"], "group_by": "http.route"},
            ),
            "breakdown of a box": ("/api/breakdown", {"select": box, "values": 6}),
            "events behind the box": (
                "/api/events",
                {"where": box, "order": "duration_ms", "limit": 50},
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in requests}
        checks: dict[str, Any] = {}
        for round_ in range(runs + 1):
            for name, (path, params) in requests.items():
                seconds, body = server.get(path, params)
                if round_:
                    times[name].append(seconds)
                checks[name] = body
        top = checks["breakdown of a box"][0]
        print(
            f"  (the box's breakdown ranks {top['field']} first: "
            f"{top['values'][0]['value']} {top['values'][0]['selection_pct']}% "
            f"of the box vs {top['values'][0]['baseline_pct']}% of the rest)"
        )
    finally:
        server.stop()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans", type=int, default=50_000, help="per client")
    parser.add_argument("--events", type=int, default=10_000_000, help="the large store")
    parser.add_argument("--data", type=Path, default=Path(".bench-data"))
    parser.add_argument("--runs", type=int, default=5, help="timed runs after a warm-up")
    parser.add_argument("--quick", action="store_true", help="10k spans a client, 1M events")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client(args.client[0], int(args.client[1]), int(args.client[2]))
        return 0
    if args.quick:
        args.spans, args.events, args.runs = 10_000, 1_000_000, 3
    print(f"wideevents serve, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"\n1. OTLP/HTTP ingest: {args.clients} clients x {args.spans:,} spans, gzip protobuf")
    results = []
    for _ in range(args.runs if not args.quick else 2):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(bench_ingest(args.clients, args.spans, Path(tmp)))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"  accepted (200, on the spool): {med['accepted_per_s']:>9,.0f} spans/s "
        f"({med['accepted_s']:.2f} s for {int(med['spans']):,})"
    )
    print(f"  then ingested into DuckDB:    {med['ingest_s']:.2f} s")
    print(f"  end to end:                   {med['end_to_end_per_s']:>9,.0f} spans/s")
    print(
        "  runs (accepted spans/s): "
        + ", ".join(f"{r['accepted_per_s']:,.0f}" for r in results)
        + f"   (median of {len(results)}; every span counted in the store)"
    )

    db, p99 = large_store(args.data, args.events)
    print(f"\n2. UI API round trips on {args.events:,} events ({db}), median of {args.runs}")
    times = bench_ui(db, p99, args.runs)
    for name, ts in times.items():
        print(
            f"  {name:<34} {statistics.median(ts) * 1000:>7.0f} ms"
            f"   (min {min(ts) * 1000:.0f}, max {max(ts) * 1000:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
