"""Flask and Django apps under gunicorn (2 workers) on loopback, driven by concurrent requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wideevents.store.ingest import connect, ingest_store
from wideevents.store.paths import StorePaths

from .serve_helpers import free_port

APPS = Path(__file__).parent / "apps"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
SECRETS = ("SEKRET-", JWT, "hunter2")


@dataclass
class Server:
    url: str
    db: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(params=["flask", "django"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    db = tmp_path / "http.duckdb"
    target = {"flask": "flask_app:app", "django": "django_app:application"}[request.param]
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(APPS),
        "--graceful-timeout",
        "10",
        target,
    ]
    if request.param == "flask":
        args.insert(3, "--preload")  # configure in the master, then fork (the common setup)
    env = {
        **os.environ,
        "WIDEEVENTS_DB": str(db),
        "WIDEEVENTS_INGEST_INTERVAL": "0",
        "WIDEEVENTS_RAISE_INTERNAL": "0",
        "WIDEEVENTS_SERVICE": f"{request.param}-shop",
    }
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"gunicorn did not start ({request.param})")
            time.sleep(0.1)
    try:
        yield Server(url, db, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"{}" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as err:
        err.read()
        return int(err.code)


def _trace(i: int) -> tuple[str, str]:
    return f"{i + 1:032x}", f"{i + 1:016x}"


def test_one_event_per_request_with_routes_statuses_traces_and_no_secrets(server: Server) -> None:
    jobs: list[tuple[str, str, dict[str, str], int]] = []
    for i in range(200):
        headers = {"Authorization": f"Bearer {JWT}", "X-Request-Id": f"req-{i}"}
        if i % 4 == 0:
            trace, span = _trace(i)
            headers["traceparent"] = f"00-{trace}-{span}-01"
        jobs.append((f"/users/{i}?token=SEKRET-{i}&page=2", "GET", headers, 200))
    jobs += [("/orders", "POST", {}, 201)] * 40
    jobs += [("/boom", "GET", {}, 500)] * 30
    jobs += [("/no/such/page", "GET", {}, 404)] * 20
    jobs += [("/healthz", "GET", {}, 200)] * 10
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda j: _call(server.url + j[0], j[1], j[2]), jobs))
    assert statuses == [j[3] for j in jobs]

    server.proc.send_signal(signal.SIGTERM)  # workers flush at exit
    assert server.proc.wait(30) == 0
    spool = StorePaths.for_db(server.db).spool
    raw = b"".join(p.read_bytes() for p in spool.glob("*.jsonl"))
    assert raw.count(b"\n") == 290 + 200  # requests (not /healthz) + their db.query children
    for secret in SECRETS:
        assert secret.encode() not in raw

    ingest_store(server.db)
    paths = StorePaths.for_db(server.db)
    with paths.lock(exclusive=False, timeout=30):
        con = connect(paths, read_only=True)
        try:

            def q(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
                return con.execute(sql, params or []).fetchall()

            by_name = dict(q("SELECT name, count(*) FROM events GROUP BY name"))
            assert by_name == {
                "GET /users/<int:user_id>": 200,
                "POST /orders": 40,
                "GET /boom": 30,
                "GET": 20,
                "db.query": 200,
            }
            assert q(
                'SELECT DISTINCT "http.route", "http.response.status_code" FROM events '
                "WHERE name = 'GET' "
            ) == [(None, 404)]
            assert sorted(
                q(
                    'SELECT DISTINCT name, "http.response.status_code" FROM events '
                    "WHERE name != 'db.query'"
                )
            ) == [
                ("GET", 404),
                ("GET /boom", 500),
                ("GET /users/<int:user_id>", 200),
                ("POST /orders", 201),
            ]
            ((etype, message, error),) = q(
                'SELECT DISTINCT "error.type", "error.message", error FROM events '
                "WHERE name = 'GET /boom'"
            )
            assert etype == "RuntimeError" and error is True
            assert message == "database said: password=[REDACTED] rejected"
            rows = q(
                'SELECT "user.id", trace_id, parent_id, span_id, '
                '"http.request.header.authorization", "http.request.header.x-request-id", '
                '"url.path", "client.address" FROM events '
                "WHERE name = 'GET /users/<int:user_id>'"
            )
            for user_id, trace_id, parent_id, span_id, auth, request_id, path, client in rows:
                assert auth == "[REDACTED]" and request_id == f"req-{user_id}"
                assert path == f"/users/{user_id}" and client == "127.0.0.1"
                if user_id % 4 == 0:
                    assert (trace_id, parent_id) == _trace(user_id)  # the caller's trace
                else:
                    assert parent_id is None
                (child,) = q(
                    "SELECT trace_id, parent_id FROM events "
                    "WHERE name = 'db.query' AND parent_id = ?",
                    [span_id],
                )
                assert child == (trace_id, span_id)
            for (column,) in q(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
            ):
                for secret in SECRETS:
                    col = '"' + column.replace('"', '""') + '"'
                    found = q(
                        f"SELECT count(*) FROM events WHERE contains(CAST({col} AS VARCHAR), ?)",
                        [secret],
                    )
                    assert found == [(0,)], (column, secret)
        finally:
            con.close()


def test_frameworks_are_optional_extras() -> None:
    script = (
        "import sys; sys.modules['flask'] = None\n"
        "try:\n"
        "    import wideevents.integrations.flask\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "import wideevents; print('flask' in sys.modules and sys.modules['flask'] is not None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["'flask' is not installed: pip install 'wideevents[flask]'", "False"]


def test_asgi_fastapi_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "asgi.duckdb"
    env = {
        **os.environ,
        "WIDEEVENTS_DB": str(db),
        "WIDEEVENTS_INGEST_INTERVAL": "0",
        "WIDEEVENTS_RAISE_INTERNAL": "0",
        "WIDEEVENTS_SERVICE": "fastapi-shop",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(APPS),
            "--port",
            str(port),
            "--log-level",
            "critical",
            "fastapi_app:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "uvicorn did not start"
                time.sleep(0.1)
        jobs: list[tuple[str, dict[str, str], int]] = []
        for i in range(60):
            headers = {"Authorization": f"Bearer {JWT}"}
            if i % 3 == 0:
                trace, span = _trace(i)
                headers["traceparent"] = f"00-{trace}-{span}-01"
            jobs.append((f"/users/{i}?token=SEKRET-{i}", headers, 200))
        jobs += [("/boom", {}, 500)] * 10 + [("/nope", {}, 404)] * 10
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda j: _call(url + j[0], "GET", j[1]), jobs))
        assert statuses == [j[2] for j in jobs]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    ingest_store(db)
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=False, timeout=30):
        con = connect(paths, read_only=True)
        try:
            names = dict(con.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall())
            assert names == {"GET /users/{user_id}": 60, "GET /boom": 10, "GET": 10, "db.query": 60}
            rows = con.execute(
                'SELECT "user.id", trace_id, parent_id, "http.response.status_code", '
                '"http.request.header.authorization" FROM events '
                "WHERE name = 'GET /users/{user_id}'"
            ).fetchall()
            for user_id, trace_id, parent_id, status, auth in rows:
                assert status == 200 and auth == "[REDACTED]"
                if user_id % 3 == 0:
                    assert (trace_id, parent_id) == _trace(user_id)
            ((etype, message, status),) = con.execute(
                'SELECT DISTINCT "error.type", "error.message", "http.response.status_code" '
                "FROM events WHERE name = 'GET /boom'"
            ).fetchall()
            assert (etype, status) == ("RuntimeError", 500)
            assert message == "database said: password=[REDACTED] rejected"
            for secret in SECRETS:
                ((n,),) = con.execute(
                    'SELECT count(*) FROM events WHERE contains("url.path", ?) '
                    'OR contains("http.request.header.authorization", ?)',
                    [secret, secret],
                ).fetchall()
                assert n == 0
        finally:
            con.close()
