"""The OTLP/HTTP receiver of `wideevents serve`, fed by OpenTelemetry SDKs no one here wrote.

Every test starts `wideevents serve` as a real process and reads the store afterwards
through the query API (which ingests first).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from wideevents.query import Query, Store, parse_filter
from wideevents.serve.otlp import MAX_SPANS

from .serve_helpers import Served, serve

HERE = Path(__file__).parent
NODE_CLIENT = HERE / "node_client"


def _run_python_client(
    url: str,
    service: str,
    traces: int,
    token: str | None = None,
    env: dict[str, str] | None = None,
) -> list[Any]:
    args = [sys.executable, str(HERE / "otel_client.py"), url, service, str(traces)]
    if token:
        args.append(token)
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _count(db: Path, *where: str) -> int:
    with Store(db) as store:
        rows = store.query(Query(filters=[parse_filter(w) for w in where], limit=1))
    return int(rows[0]["count"]) if rows else 0


def _store_bytes(db: Path) -> bytes:
    """Every byte the store holds on disk: the database, its WAL and the spool."""
    data = b""
    for path in [db, Path(str(db) + ".wal"), *sorted(Path(str(db) + ".spool").rglob("*"))]:
        if path.is_file():
            data += path.read_bytes()
    return data


def test_python_sdk_spans_become_events_with_ids_parents_attributes_and_no_secrets(
    tmp_path: Path,
) -> None:
    db = tmp_path / "otlp.duckdb"
    with serve(db) as srv:
        sent = _run_python_client(srv.url, "py-payments", 20)
    with Store(db) as store:
        for t in sent[:5]:
            got = {e["span_id"]: e for e in store.trace(t["trace_id"])}
            root, child = got[t["root"]], got[t["child"]]
            assert root["parent_id"] is None if "parent_id" in root else True
            assert "parent_id" not in root
            assert child["parent_id"] == t["root"]
            assert root["name"] == "POST /pay" and child["name"] == "charge"
            assert root["service.name"] == "py-payments" and root["service.version"] == "9.9.9"
            assert root["telemetry.sdk.language"] == "python"
            assert root["http.route"] == "/pay" and root["otel.span.kind"] == "server"
            assert root["otel.scope.name"] == "otel-client"
            assert child["otel.span.kind"] == "client" and child["card.brand"] == "visa"
            assert root["duration_ms"] >= child["duration_ms"] >= 0
            assert root["url.full"].endswith("?token=[REDACTED]")
            assert root["http.request.header.authorization"] == "[REDACTED]"
        failed = store.trace(sent[0]["trace_id"])[1]
        assert failed["error"] is True
        assert failed["error.type"] == "TimeoutError"
        assert failed["error.message"] == "gateway timeout"
    assert _count(db) == 40
    assert _count(db, "error = true") == 4
    stored = _store_bytes(db)
    assert b"PY-SEKRET" not in stored and b"py-abcdefghijklmnop" not in stored


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_node_sdk_spans_become_events(tmp_path: Path, encoding: str) -> None:
    """exporter-trace-otlp-proto sends protobuf, exporter-trace-otlp-http JSON (hex ids).

    Fails, not skips, without Node.js (as the UI tests do without chromium): a skip in CI
    reads as a pass. `make test` installs Debian's nodejs and npm when they are missing.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "node or npm is not installed: `make test` installs them (apt-get install nodejs npm)"
        )
    if not (NODE_CLIENT / "node_modules").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_CLIENT, check=True, timeout=300
        )
    db = tmp_path / "node.duckdb"
    with serve(db) as srv:
        out = subprocess.run(
            ["node", str(NODE_CLIENT / "send.js"), srv.url, "node-orders", "30", encoding],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    sent = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(sent) == 30
    with Store(db) as store:
        for t in sent:
            got = {e["span_id"]: e for e in store.trace(t["trace_id"])}
            root, child = got[t["root"]], got[t["child"]]
            assert child["parent_id"] == t["root"] and "parent_id" not in root
            assert root["service.name"] == "node-orders" and root["host.name"] == "node-host-1"
            assert root["http.response.status_code"] == 200
            assert root["otel.span.kind"] == "server" and child["otel.span.kind"] == "client"
            assert child["db.rows"] == 3 and child["error"] is True
            assert child["error.type"] == "QueryTimeout"
            assert child["error.message"] == "statement timeout"
            assert root["http.request.header.authorization"] == "[REDACTED]"
    stored = _store_bytes(db)
    assert b"NODE-SEKRET" not in stored and b"node-abcdefghijklmnop" not in stored


def _request(n: int, service: str = "hand", start: int = 0) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    spans = rs.scope_spans.add()
    for i in range(start, start + n):
        span = spans.spans.add()
        span.trace_id = (i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = "op"
        span.start_time_unix_nano = 1_764_000_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 2_000_000
        attr = span.attributes.add()
        attr.key, attr.value.int_value = "i", i
    return req


PROTOBUF = {"Content-Type": "application/x-protobuf"}


def test_json_encoding_hex_ids_and_a_json_answer(tmp_path: Path) -> None:
    db = tmp_path / "json.duckdb"
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "c"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "curl"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1764143000000000000",
                                "endTimeUnixNano": "1764143000250000000",
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "42"}},
                                    {"key": "ok", "value": {"boolValue": True}},
                                    {
                                        "key": "tags",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "a"},
                                                    {"stringValue": "b"},
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    with serve(db) as srv:
        status, answer = srv.post(
            "/v1/traces", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        assert (status, json.loads(answer)) == (200, {})
        status, rows = srv.get("/api/trace/5b8efff798038103d269b633813fc60c")
    assert status == 200
    (ev,) = rows
    assert ev["span_id"] == "eee19b7ec3c1b174" and ev["parent_id"] == "eee19b7ec3c1b173"
    assert ev["n"] == 42 and ev["ok"] is True and ev["tags"] == ["a", "b"]
    assert ev["duration_ms"] == 250.0
    # Times pass through the pipeline's monotonic clock: exact to a microsecond or two.
    at = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00"))
    assert abs(at.timestamp() - 1_764_143_000) < 3e-6
    assert ev["error"] is True and ev["error.message"] == "boom"
    assert ev["otel.span.kind"] == "server" and ev["service.name"] == "c"
    # serve made the database (for the API call) and the spool: owner-only, as the SDK's.
    spool = Path(str(db) + ".spool")
    assert db.stat().st_mode & 0o777 == 0o600 and spool.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in spool.iterdir())


def test_malformed_bodies_get_400_with_a_message_and_lose_nothing_accepted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bad.duckdb"
    with serve(db) as srv:
        good = _request(100).SerializeToString()
        status, answer = srv.post("/v1/traces", good, PROTOBUF)
        assert status == 200
        assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")
        bad = [
            (b"\xff\xff\xff garbage", PROTOBUF, b"not an OTLP protobuf"),
            (good[: len(good) // 2], PROTOBUF, b"not an OTLP protobuf"),
            (b"{not json", {"Content-Type": "application/json"}, b"not an OTLP JSON"),
            (b'{"resourceSpans": 3}', {"Content-Type": "application/json"}, b"not a list"),
            (b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, b"not valid gzip"),
            (good, {"Content-Type": "text/plain"}, b"Content-Type"),
        ]
        for body, headers, message in bad:
            status, answer = srv.post("/v1/traces", body, headers)
            assert status in (400, 415), (message, status)
            assert message in answer
        # A span with a bad id is refused alone, as a partial success.
        req = _request(3, start=100)
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = b"short"
        status, answer = srv.post("/v1/traces", req.SerializeToString(), PROTOBUF)
        partial = ExportTraceServiceResponse.FromString(answer).partial_success
        assert (status, partial.rejected_spans) == (200, 1) and partial.error_message
        status, answer = srv.post(
            "/v1/traces", gzip.compress(good), {**PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert status == 200
    assert _count(db) == 202
    assert _count(db, "i = 99") == 2


def test_oversized_bodies_and_gzip_bombs_get_413(tmp_path: Path) -> None:
    db = tmp_path / "big.duckdb"
    with serve(db) as srv:
        status, _ = srv.post("/v1/traces", _request(5).SerializeToString(), PROTOBUF)
        assert status == 200
        huge = b"\x00" * (17 << 20)
        status, answer = srv.post("/v1/traces", huge, PROTOBUF)
        assert status == 413 and b"over" in answer
        bomb = gzip.compress(b"\x00" * (64 << 20), 9)  # 64 MiB from ~64 KiB
        assert len(bomb) < 1 << 20
        status, answer = srv.post("/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 413 and b"decompressed" in answer
        status, _ = srv.get("/api/fields")
        assert status == 200  # still serving
    assert _count(db) == 5


def _bare_spans(n: int) -> bytes:
    """*n* spans with ids and nothing else: about 30 bytes each on the wire."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        span = spans.add()
        span.trace_id = (i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
    return req.SerializeToString()


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (Linux's VmHWM), or None where /proc has none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def test_a_request_over_the_span_cap_is_refused_whole_in_bounded_memory(tmp_path: Path) -> None:
    """16 MiB of tiny spans would be gigabytes as events: refused before any is built."""
    db = tmp_path / "cap.duckdb"
    with serve(db) as srv:
        tiny = _bare_spans(200_000)  # ~6 MB, well under the body cap
        status, answer = srv.post("/v1/traces", tiny, PROTOBUF)
        assert status == 413
        assert b"200000 spans in one request, over the limit of 50000" in answer
        peak = _peak_rss_mb(srv.proc.pid)
        spans = [{"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}"} for i in range(50_001)]
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        status, answer = srv.post(
            "/v1/traces", json.dumps(doc).encode(), {"Content-Type": "application/json"}
        )
        assert status == 413 and b"50001 spans" in json.loads(answer)["message"].encode()
        status, _ = srv.post("/v1/traces", _request(MAX_SPANS).SerializeToString(), PROTOBUF)
        assert status == 200  # the cap itself is fine
    assert _count(db) == MAX_SPANS
    if peak is not None:  # ~1.2 GB when the 200k spans became events
        assert peak < 500, f"serve peaked at {peak:.0f} MB"


def test_a_gzip_body_of_several_members_is_read_whole(tmp_path: Path) -> None:
    """gzip -d reads every member of a file; so must the receiver, and still within bounds."""
    db = tmp_path / "members.duckdb"
    first, second = _request(3).SerializeToString(), _request(4, start=3).SerializeToString()
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}
    with serve(db) as srv:
        # Two serialized requests one after the other are one request with both's spans.
        status, _ = srv.post("/v1/traces", gzip.compress(first) + gzip.compress(second), gz)
        assert status == 200
        bomb = gzip.compress(b"\x00" * (10 << 20), 9)  # each member under the limit
        status, answer = srv.post("/v1/traces", bomb * 2, gz)
        assert status == 413 and b"decompressed" in answer
        status, answer = srv.post("/v1/traces", gzip.compress(first) + b"trailing junk", gz)
        assert status == 400 and b"not valid gzip" in answer
    assert _count(db) == 7


def test_a_burst_of_50k_spans_from_concurrent_clients_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "burst.duckdb"
    clients, traces = 5, 5_000  # two spans a trace: 50,000 spans
    with serve(db) as srv, ThreadPoolExecutor(clients) as pool:
        sent = list(
            pool.map(lambda k: _run_python_client(srv.url, f"burst-{k}", traces), range(clients))
        )
    assert sum(len(s) for s in sent) == clients * traces
    assert _count(db, "service.name starts-with burst-") == 2 * clients * traces
    with Store(db) as store:
        rows = store.query(
            Query(filters=[parse_filter("name = charge")], group_by=["service.name"], limit=10)
        )
    assert sorted((r["service.name"], r["count"]) for r in rows) == [
        (f"burst-{k}", traces) for k in range(clients)
    ]


def test_with_a_token_every_request_needs_it(tmp_path: Path) -> None:
    db = tmp_path / "token.duckdb"
    token = "t0ken-" + os.urandom(12).hex()
    with serve(db, token=token) as srv:
        body = _request(2).SerializeToString()
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-wrong-token"},
            {"Authorization": token},
        ):
            anonymous = Served(srv.url, db, srv.proc, srv.log, None)
            status, _ = anonymous.post("/v1/traces", body, {**PROTOBUF, **headers})
            assert status == 401
            req_status, answer = _get(srv.url + "/api/fields", headers)
            assert req_status == 401 and "token" in answer["error"]
        # Configured as the README says, through the standard variables only.
        otel_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": srv.url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}",
        }
        sent = _run_python_client("-", "with-token", 3, env=otel_env)
        status, rows = srv.get(f"/api/trace/{sent[0]['trace_id']}")
        assert status == 200 and len(rows) == 2
        # The page itself (no data) loads without it, to take the token from ?token=.
        page = _get_text(srv.url + "/")
        assert '<div id="app"' in page or "<html" in page
    assert _count(db) == 6


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    from .serve_helpers import call

    return call(url, headers)


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def test_a_non_loopback_host_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WIDEEVENTS_SERVE_TOKEN"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wideevents.cli",
            "serve",
            "--db",
            str(tmp_path / "x.duckdb"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: --host 0.0.0.0 is not a loopback address")
    assert "Traceback" not in out.stderr


def test_loopback_refuses_a_foreign_host_header(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the store."""
    db = tmp_path / "rebind.duckdb"
    with serve(db) as srv:
        status, _ = srv.post("/v1/traces", _request(1).SerializeToString(), PROTOBUF)
        assert status == 200
        import urllib.error
        import urllib.request

        req = urllib.request.Request(srv.url + "/api/fields", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        err.value.close()
        assert err.value.code == 400
        assert srv.get("/api/fields")[0] == 200


def test_spans_are_ingested_in_the_background_when_nobody_queries(tmp_path: Path) -> None:
    """A server that only receives must not grow its spool for ever: the store's own
    background ingester (a process of its own, as the SDK's sink starts) takes it in."""
    import time

    db = tmp_path / "quiet.duckdb"
    spool = Path(str(db) + ".spool")
    # Linger 0: the ingester leaves after its run instead of outliving the test by a minute.
    env = {
        "WIDEEVENTS_INGEST_INTERVAL": "0.2",
        "WIDEEVENTS_INGEST_AGE": "0",
        "WIDEEVENTS_INGEST_LINGER": "0",
    }
    with serve(db, env=env) as srv:
        for k in range(3):
            status, _ = srv.post(
                "/v1/traces", _request(50, start=50 * k).SerializeToString(), PROTOBUF
            )
            assert status == 200
        deadline = time.monotonic() + 30
        while True:
            # (An empty open segment stays for the next events: nothing waits in it.)
            waiting = [
                p
                for p in spool.iterdir()
                if p.name.endswith(".jsonl")
                or (p.name.endswith(".jsonl.open") and p.stat().st_size)
            ]
            if not waiting and db.exists():
                break
            assert time.monotonic() < deadline, f"still spooled: {waiting}"
            time.sleep(0.1)
    with Store(db, ingest_first=False) as store:
        rows = store.query(Query(limit=1))
    assert rows[0]["count"] == 150


def test_a_store_that_cannot_be_written_answers_503_and_keeps_every_200(tmp_path: Path) -> None:
    """A 200 means the spans are on disk; a failed write is said, not swallowed."""
    import resource

    def small_disk() -> None:  # writes past 1 MB fail (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))

    db = tmp_path / "full.duckdb"
    env = {"WIDEEVENTS_INGEST_INTERVAL": "0"}
    with serve(db, env=env, preexec_fn=small_disk) as srv:
        status, _ = srv.post("/v1/traces", _request(100).SerializeToString(), PROTOBUF)
        assert status == 200
        big = _request(6000, start=100).SerializeToString()  # ~1.5 MB of event lines
        status, answer = srv.post("/v1/traces", big, PROTOBUF)
        assert status == 503 and b"could not be written" in answer
        status, _ = srv.post(
            "/v1/traces", _request(100, start=10_000).SerializeToString(), PROTOBUF
        )
        assert status == 200  # a new segment: writing resumes
    assert _count(db) == 200
    assert _count(db, "i >= 100", "i < 10000") == 0


def _send_and_read_trace_1(db: Path, req: ExportTraceServiceRequest) -> dict[str, Any]:
    """Send *req* to a serve process on *db*; the one event stored for trace id 1."""
    with serve(db) as srv:
        status, _ = srv.post("/v1/traces", req.SerializeToString(), PROTOBUF)
        assert status == 200
        status, rows = srv.get(f"/api/trace/{(1).to_bytes(16, 'big').hex()}")
    assert status == 200
    (stored,) = rows
    return dict(stored)


def test_secrets_anywhere_in_a_span_never_reach_the_store(tmp_path: Path) -> None:
    """Name, attributes, resource, span events, status message: all go through redaction."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    req = _request(1, service="leaky")
    rs = req.resource_spans[0]
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "deploy.api_key", "RESOURCE-SEKRET-1"
    span = rs.scope_spans[0].spans[0]
    span.name = "GET /login?token=NAME-SEKRET-2"
    kv = span.attributes.add()
    kv.key, kv.value.string_value = "http.request.header.cookie", "session=COOKIE-SEKRET-3"
    kv = span.attributes.add()
    kv.key, kv.value.string_value = "note", f"Bearer {jwt}"
    ev = span.events.add()
    ev.name, ev.time_unix_nano = "retry", span.start_time_unix_nano + 10
    kv = ev.attributes.add()
    kv.key, kv.value.string_value = "db.statement", "SELECT 1 -- password=EVENT-SEKRET-4"
    span.status.code = 2
    span.status.message = "login failed for password=STATUS-SEKRET-5"
    db = tmp_path / "leaky.duckdb"
    stored = _send_and_read_trace_1(db, req)
    assert stored["error"] is True and stored["otel.span.events"][0]["name"] == "retry"
    assert "meta.redacted" in stored
    data = _store_bytes(db)
    for secret in ("RESOURCE-SEKRET", "NAME-SEKRET", "COOKIE-SEKRET", jwt, "EVENT-SEKRET"):
        assert secret.encode() not in data, secret
    assert b"STATUS-SEKRET" not in data


def test_bytes_attributes_are_kept_as_text_so_redaction_reads_them(tmp_path: Path) -> None:
    """A token sent as a bytes attribute is redacted like a string one, not base64'd past
    redaction; bytes that are not UTF-8 text are kept as base64."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    secret = f"Bearer {jwt}".encode()
    req = _request(1, service="bytes")
    span = req.resource_spans[0].scope_spans[0].spans[0]
    for key, raw in (("note", secret), ("label", b"plain text"), ("blob", b"\xff\x00\x01")):
        kv = span.attributes.add()
        kv.key, kv.value.bytes_value = key, raw
    db = tmp_path / "bytes.duckdb"
    stored = _send_and_read_trace_1(db, req)
    assert stored["label"] == "plain text"
    assert stored["blob"] == base64.b64encode(b"\xff\x00\x01").decode()
    assert jwt not in stored["note"] and "note" in stored["meta.redacted"]
    data = _store_bytes(db)
    assert jwt.encode() not in data and base64.b64encode(secret) not in data
