"""What wideevents costs inside one web worker, measured finely enough to tell 1 µs apart.

``bench_http.py`` measures the real thing (gunicorn, wrk, whole rounds), but its rounds differ
by 5 to 10% on a shared 2-core machine, which is more than the differences worth chasing there.
This benchmark takes the network, gunicorn and the load generator away and keeps what the
worker process does for a request: ``http_apps/bench_app.py`` is loaded twice in one process,
as its ``plain`` and its ``wideevents`` variant (the DuckDB store in a temporary folder, no
background ingester), and both are called the way gunicorn's sync worker calls an app: a
WSGI environ like gunicorn's, the body iterated, then closed, the same request paths as
``bench_http``'s wrk script.

Blocks of requests alternate between the two apps (which goes first flips every pair), on one
CPU, and each block's CPU time (``time.process_time()``: every thread of the process, so the
pipeline's worker thread counts) is divided by its requests. The figure is the median, over
pairs of neighbouring blocks, of wideevents' CPU per request minus plain's, with its
quartiles; drift of the machine's speed between pairs cancels out.

    .venv/bin/python benchmarks/bench_worker.py              # 200 pairs of 400 requests (~15 s)
    .venv/bin/python benchmarks/bench_worker.py --quick      # 40 pairs of 200
    .venv/bin/python benchmarks/bench_worker.py --batch 64   # another inline batch size
    .venv/bin/python benchmarks/bench_worker.py --json       # and one JSON object at the end
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

APPS = Path(__file__).resolve().parent / "http_apps"
# The wrk script's cycle of paths (http_apps/wrk_report.lua).
PATHS = (
    "/users/1",
    "/items",
    "/users/42",
    "/users/7",
    "/items",
    "/users/1234",
    "/users/99",
    "/items",
    "/users/5",
    "/users/31337",
)

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_app(variant: str) -> App:
    """``bench_app.app`` of *variant*, from a module of its own (the file reads the variant
    from the environment when it is loaded)."""
    os.environ["BENCH_VARIANT"] = variant
    spec = importlib.util.spec_from_file_location(f"bench_app_{variant}", APPS / "bench_app.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: App = module.app
    return app


def environ(path: str) -> dict[str, Any]:
    """What gunicorn's sync worker hands the app for ``GET path`` from wrk."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "gunicorn/bench",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SCRIPT_NAME": "",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def block(app: App, requests: int) -> float:
    """CPU microseconds per request over *requests* requests to *app*."""
    start = time.process_time()
    for i in range(requests):
        result = app(environ(PATHS[i % len(PATHS)]), _start_response)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.process_time() - start) / requests * 1e6


def alternate(one: App, other: App, pairs: int, size: int) -> tuple[list[float], list[float]]:
    """CPU µs per request of *one* and of *other*, in *pairs* pairs of neighbouring blocks of
    *size* requests; which goes first flips every pair."""
    ones: list[float] = []
    others: list[float] = []
    for k in range(pairs):
        if k % 2:
            others.append(block(other, size))
            ones.append(block(one, size))
        else:
            ones.append(block(one, size))
            others.append(block(other, size))
    return ones, others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="40 pairs of 200 requests")
    parser.add_argument("--pairs", type=int, help="pairs of blocks (default 200; quick 40)")
    parser.add_argument("--block", type=int, help="requests per block (default 400; quick 200)")
    parser.add_argument("--batch", type=int, help="events an app thread encodes at once (16)")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to run on (0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    pairs = args.pairs or (40 if args.quick else 200)
    size = args.block or (200 if args.quick else 400)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    os.environ.update(
        WIDEEVENTS_DB=str(tmp / "events.duckdb"),
        WIDEEVENTS_INGEST_INTERVAL="0",  # no ingester process: the worker's own cost only
        WIDEEVENTS_SERVICE="bench",
    )
    from wideevents import _pipeline

    if args.batch:
        _pipeline._INLINE_BATCH = args.batch
        _pipeline._INLINE_MAX = max(_pipeline._INLINE_MAX, args.batch)
    plain, instrumented = load_app("plain"), load_app("wideevents")

    import wideevents

    for _ in range(10):  # warm both up: imports, caches, the first spool segment
        block(plain, 100)
        block(instrumented, 100)
    ours, theirs = alternate(instrumented, plain, pairs, size)
    wideevents.flush()
    stats = wideevents.stats()

    extra = [a - b for a, b in zip(ours, theirs, strict=True)]
    q1, median, q3 = statistics.quantiles(extra, n=4)
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    print(
        f"CPU per request, {pairs} pairs of {size} requests, batch "
        f"{_pipeline._INLINE_BATCH}, on CPU {args.cpu}:"
    )
    print(f"  plain      {statistics.median(theirs):6.1f} us")
    print(f"  wideevents {statistics.median(ours):6.1f} us")
    print(
        f"  wideevents adds {median:.1f} us per request (quartiles {q1:.1f} to {q3:.1f}), "
        f"x{ratio:.3f} of plain"
    )
    served = 10 * 100 + pairs * size
    if stats["exported"] != served:  # every request's event reached the spool
        print(f"error: {stats['exported']} events exported for {served} requests", file=sys.stderr)
        return 1
    if args.json:
        out = {
            "pairs": pairs,
            "block": size,
            "batch": _pipeline._INLINE_BATCH,
            "plain_us": statistics.median(theirs),
            "wideevents_us": statistics.median(ours),
            "extra_us": median,
            "extra_quartiles_us": [q1, q3],
            "ratio": ratio,
        }
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
