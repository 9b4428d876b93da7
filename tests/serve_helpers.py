"""`wideevents serve` as a real subprocess on a free loopback port, for the serve tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def has_ipv6_loopback() -> bool:
    try:
        free_port("::1")
    except OSError:
        return False
    return True


@dataclass
class Served:
    url: str
    db: Path
    proc: subprocess.Popen[bytes]
    log: Path
    token: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> tuple[int, Any]:
        """GET an API path; (status, decoded JSON)."""
        return call(self.url + path, headers=self.headers())

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={**self.headers(), **headers}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return int(err.code), err.read()


def call(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status), orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code), orjson.loads(err.read() or b"null")


@contextmanager
def serve(
    db: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    host: str = "127.0.0.1",
) -> Iterator[Served]:
    """Start ``wideevents serve --db DB`` and wait until it answers; SIGTERM it after."""
    port = free_port(host)
    args = [sys.executable, "-m", "wideevents.cli", "serve", "--db", str(db), "--port", str(port)]
    args += ["--host", host]
    full_env = {**os.environ, "WIDEEVENTS_RAISE_INTERNAL": "0", **(env or {})}
    if token:
        full_env["WIDEEVENTS_SERVE_TOKEN"] = token
    log = db.with_name(db.name + f".serve-{port}.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            args, env=full_env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=preexec_fn
        )
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                resp.read()
            break
        except urllib.error.HTTPError as err:
            err.close()
            break  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"wideevents serve did not start: {log.read_text()}") from None
            time.sleep(0.05)
    try:
        yield Served(url, db, proc, log, token)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
