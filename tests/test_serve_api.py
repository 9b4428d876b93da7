"""The JSON API of `wideevents serve` answers what `--format json` of the CLI prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from wideevents.cli import main
from wideevents.cli.demo_cmd import NEW_BUILD, generate

from .serve_helpers import Served, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("api") / "api.duckdb"
    generate(db, 1500)
    with serve(db) as srv:
        yield srv


def _cli(db: Path, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _api(srv: Served, path: str, **params: Any) -> Any:
    status, body = srv.get(path + ("?" + urlencode(params, doseq=True) if params else ""))
    assert status == 200, body
    return body


def test_query_breakdown_events_trace_and_fields_match_the_cli(served: Served) -> None:
    db = served.db
    where = ["http.route = /checkout"]
    calcs = ["count", "p99(duration_ms)", "count_distinct(user.id)"]
    assert _api(served, "/api/query", calc=calcs, where=where, group_by="service.version") == _cli(
        db, "query", *[a for c in calcs for a in ("-c", c)], "-w", where[0], "-g", "service.version"
    )
    assert _api(
        served, "/api/query", calc="heatmap(duration_ms)", where=where, granularity="10m"
    ) == _cli(db, "query", "-c", "heatmap(duration_ms)", "-w", where[0], "--granularity", "10m")
    api_breakdown = _api(served, "/api/breakdown", where=where, select="duration_ms >= 800")
    assert api_breakdown == _cli(db, "breakdown", "-w", where[0], "--select", "duration_ms >= 800")
    assert api_breakdown[0]["field"] == "service.version"
    assert api_breakdown[0]["values"][0]["value"] == NEW_BUILD
    events = _api(served, "/api/events", where=where, order="duration_ms", limit=5)
    assert events == _cli(db, "events", "-w", where[0], "--order", "duration_ms", "--limit", "5")
    trace_id = events[0]["trace_id"]
    assert _api(served, f"/api/trace/{trace_id}") == _cli(db, "trace", trace_id)
    assert _api(served, "/api/fields") == _cli(db, "fields")


def test_auto_granularity_is_named_in_a_header(served: Served) -> None:
    import urllib.request

    url = served.url + "/api/query?" + urlencode({"calc": "count", "granularity": "auto"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["X-Granularity"] == "5m"  # three hours in about 60 buckets
        rows = json.loads(resp.read())
    assert 30 <= len(rows) <= 40 and all("time" in r for r in rows)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/query", {"calc": "p99(duration_msx)"}, "did you mean 'duration_ms'"),
        ("/api/query", {"where": "duration_ms >>> 5"}, "duration_ms >>> 5"),
        ("/api/query", {"calc": "count", "granularity": "5 parsecs"}, "not a duration"),
        ("/api/query", {"calc": "count", "since": "1h", "from": "yesterday"}, "not an ISO time"),
        ("/api/query", {"limit": "many"}, "whole number"),
        ("/api/breakdown", {"where": "http.route exists"}, "at least one select"),
        ("/api/breakdown", {"select": "duration_ms > 1e12"}, "matches no event"),
        ("/api/events", {"order": "nope"}, "unknown field"),
        ("/api/trace/xyz", {}, "not a trace id"),
    ],
)
def test_bad_input_is_a_400_with_the_message(
    served: Served, path: str, params: dict[str, str], message: str
) -> None:
    status, body = served.get(path + ("?" + urlencode(params) if params else ""))
    assert status == 400
    assert message in body["detail" if "detail" in body else "error"]


def test_a_missing_trace_and_an_unknown_path_are_json_404s(served: Served) -> None:
    assert served.get("/api/trace/" + "0" * 32) == (
        404,
        {"error": f"no events in trace {'0' * 32!r}"},
    )
    status, body = served.get("/api/nothing")
    assert status == 404 and "nothing at /api/nothing" in body["error"]


def test_query_rows_are_capped_and_a_larger_limit_is_a_400(served: Served) -> None:
    status, body = served.get(
        "/api/query?" + urlencode({"group_by": ["trace_id", "span_id"], "limit": 100_000_000})
    )
    assert status == 400
    assert "limit must be at most 10,000, got 100,000,000" in body["error"]
    rows = _api(served, "/api/query", group_by=["trace_id", "span_id"], limit=10_000)
    assert 1000 < len(rows) <= 10_000


def _raw(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    """(status, headers, JSON body) of a request, whatever its status."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, json.loads(err.read())


def test_every_error_is_json_with_a_message(served: Served) -> None:
    status, headers, body = _raw(served.url + "/v1/traces")
    assert (status, headers["Allow"]) == (405, "POST")
    assert body == {"error": "GET is not allowed on /v1/traces"}
    status, _, body = _raw(served.url + "/api/query", method="POST")
    assert status == 405 and "POST is not allowed" in body["error"]
    status, _, body = _raw(served.url + "/api/fields", headers={"Host": "evil.example"})
    assert status == 400 and body["error"].startswith("Invalid host header 'evil.example'")
    status, _, body = _raw(served.url + "/assets/nothing.js")
    assert (status, body) == (404, {"error": "nothing at /assets/nothing.js"})


def test_a_store_open_in_another_process_is_a_503_to_retry(served: Served) -> None:
    """DuckDB locks its file per process: a `duckdb` shell on the store makes reads wait."""
    import duckdb

    with duckdb.connect(str(served.db), read_only=True):
        status, headers, body = _raw(served.url + "/api/fields")
    assert status == 503 and headers["Retry-After"] == "5"
    assert body["error"].startswith("the store is open in another process")
    assert served.get("/api/fields")[0] == 200  # and fine once it is closed


def test_the_serve_extra_is_optional_and_named_when_missing(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['starlette'] = None\n"
        "from wideevents.cli import main\n"
        f"main(['serve', '--db', {str(tmp_path / 'x.duckdb')!r}], prog_name='wideevents')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr == "Error: 'starlette' is not installed: pip install 'wideevents[serve]'\n"
