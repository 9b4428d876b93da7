"""`wideevents serve` as a command: where it listens, and what it says when it cannot start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .serve_helpers import has_ipv6_loopback, serve

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WIDEEVENTS_SERVE_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "wideevents.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _one_span() -> bytes:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "op"
    span.start_time_unix_nano = 1_764_000_000_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    return req.SerializeToString()


def _get(url: str, host: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_a_missing_folder_is_bad_input_without_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "no" / "such" / "x.duckdb"
    out = _serve("--db", str(db), "--port", "0")
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"Error: --db {db}: the folder {db.parent} does not exist\n"
    assert not db.parent.exists()


def test_a_busy_port_is_an_error_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _serve("--db", str(tmp_path / "x.duckdb"), "--port", str(port))
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(
        f"Error: cannot listen on http://127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in out.stderr and "ERROR" not in out.stderr


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_serving_on_ipv6_loopback(tmp_path: Path) -> None:
    with serve(tmp_path / "v6.duckdb", host="::1") as srv:
        assert srv.url.startswith("http://[::1]:")
        status, _ = srv.post("/v1/traces", _one_span(), PROTOBUF)
        assert status == 200
        status, rows = srv.get("/api/trace/" + "01" * 16)
        assert status == 200 and len(rows) == 1
        page = urllib.request.urlopen(srv.url + "/", timeout=30)
        with page:
            assert page.status == 200


def test_ipv6_loopback_host_headers_are_this_machine(tmp_path: Path) -> None:
    """A browser on http://[::1]:PORT sends `Host: [::1]:PORT`; names elsewhere are refused."""
    with serve(tmp_path / "hosts.duckdb") as srv:
        assert srv.post("/v1/traces", _one_span(), PROTOBUF)[0] == 200
        port = srv.url.rsplit(":", 1)[1]
        url = srv.url + "/api/fields"
        for host in (f"[::1]:{port}", "[::1]", f"localhost:{port}", f"127.0.0.2:{port}"):
            assert _get(url, host)[0] == 200, host
        for host in (f"[::2]:{port}", f"evil.example:{port}", "[::1", f"[::ffff:1.2.3.4]:{port}"):
            status, body = _get(url, host)
            assert status == 400 and "Invalid host header" in body["error"], host
