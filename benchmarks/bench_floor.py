"""What an event per request costs at the least: a hand-written prototype, feature by feature.

``bench_worker.py`` measures what the SDK adds to a Flask worker's CPU per request. This
benchmark asks how much of that any implementation would pay. It wraps the same plain app
(``http_apps/bench_app.py``) in a prototype written for this file alone, with none of the
SDK's structure: one WSGI function, a dict per request made current in a contextvar, and
every 16 requests one function that encodes the 16 dicts with orjson and appends them to a
file in one ``write``. Then it adds, one at a time, what the SDK does on top:

* ``redaction``: the SDK's own ``Redactor.redact_batch`` over each batch (DESIGN §4);
* ``types``: the store's types sidecar signature of every record (its keys and their types);
* ``record``: the full record of DESIGN §2 (resource fields, an ISO timestamp, the name,
  parent id, sample rate and error flag; the prototype alone writes a float timestamp);
* ``route``: the route template from Werkzeug's request, when the response starts;
* ``event``: the SDK's ``Event`` (``__enter__`` / ``__exit__``) in place of the bare dict.

Each variant, then all of them together, then the SDK itself (``wideevents``), is paired
with the plain app as ``bench_worker`` pairs them: alternating blocks of requests on one CPU,
the median over pairs of the difference in CPU per request, with its quartiles.

    .venv/bin/python benchmarks/bench_floor.py            # 60 pairs of 400 per variant (~30 s)
    .venv/bin/python benchmarks/bench_floor.py --pairs 120
"""

from __future__ import annotations

import argparse
import contextvars
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_worker import App, alternate, block, load_app

FEATURES = ("redaction", "types", "record", "route", "event")
BATCH = 16


def prototype(app: App, features: frozenset[str], spool: int) -> App:
    """*app* wrapped in the hand-written event-per-request middleware, with *features*."""
    from wideevents._event import Event
    from wideevents._redact import Redaction, Redactor

    redact = Redactor(Redaction()).redact_batch if "redaction" in features else None
    types = "types" in features
    record = "record" in features
    route = "route" in features
    use_event = "event" in features
    current: contextvars.ContextVar[Any] = contextvars.ContextVar("current", default=None)
    rand = random.Random().getrandbits
    clock = time.perf_counter
    offset = time.time() - clock()
    resource = {"service.name": "bench", "host.name": "bench-host", "process.pid": os.getpid()}
    second = [-1, ""]
    signatures: set[Any] = set()
    queue: list[Any] = []

    class Queue:  # what an Event is submitted to
        submit = queue.append

    def drain() -> None:
        events = queue[:]
        queue.clear()
        dicts = [e.fields.copy() for e in events] if use_event else events
        if redact is not None:
            redact(dicts)
        lines = []
        for n, fields in enumerate(dicts):
            if use_event:
                ev = events[n]
                t0, t1, trace_id, span_id = ev._t0, ev._t1, ev.trace_id, ev.span_id
            else:
                t0, t1 = fields.pop("_t0"), fields.pop("_t1")
                trace_id, span_id = fields.pop("_trace"), fields.pop("_span")
            ts = t0 + offset
            if record:
                fields.update(resource)
                sec = int(ts)
                if sec != second[0]:
                    second[:] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
                fields["timestamp"] = f"{second[1]}.{str(1000000 + int((ts - sec) * 1e6))[1:]}Z"
                fields["name"] = f"{fields['http.request.method']} {fields.get('http.route')}"
                fields["parent_id"] = None
                fields["sample_rate"] = 1
                fields["error"] = False
            else:
                fields["timestamp"] = ts
            fields["duration_ms"] = int((t1 - t0) * 1e6 + 0.5) / 1000.0
            fields["trace_id"] = trace_id.to_bytes(16, "big").hex()
            fields["span_id"] = span_id.to_bytes(8, "big").hex()
            lines.append(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))
        if types:
            add = signatures.add
            for fields in dicts:
                add((tuple(fields), tuple(map(type, fields.values()))))
        os.write(spool, b"".join(lines))

    class Response:
        __slots__ = ("ev", "fields", "result", "token")

        def __init__(self, result: Iterable[bytes], fields: Any, token: Any, ev: Any) -> None:
            self.result, self.fields, self.token, self.ev = result, fields, token, ev

        def __iter__(self) -> Iterator[bytes]:
            return iter(self.result)

        def close(self) -> None:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
            if use_event:
                self.ev.__exit__(None, None, None)
            else:
                self.fields["_t1"] = clock()
                current.reset(self.token)
                queue.append(self.fields)
            if len(queue) >= BATCH:
                drain()

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Response:
        fields = {
            "http.request.method": environ["REQUEST_METHOD"],
            "url.path": environ["PATH_INFO"],
            "url.scheme": environ["wsgi.url_scheme"],
            "server.address": environ["HTTP_HOST"].rsplit(":", 1)[0],
            "client.address": environ["REMOTE_ADDR"],
        }
        ev = token = None
        if use_event:
            ev = Event("request", fields, Queue())  # type: ignore[arg-type]
            ev.__enter__()
        else:
            fields["_trace"], fields["_span"] = rand(128), rand(64)
            token = current.set(fields)
            fields["_t0"] = clock()

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if route:
                rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
                if rule is not None:
                    fields["http.route"] = rule.rule
            fields["http.response.status_code"] = int(status[:3])
            for name, value in headers:
                if name == "Content-Length":
                    fields["http.response.body.size"] = int(value)
            return start_response(status, headers, exc_info)

        return Response(app(environ, recording), fields, token, ev)

    return middleware


def paired(plain: App, other: App, pairs: int, size: int) -> tuple[float, float, float]:
    """Median and quartiles of *other*'s CPU per request minus *plain*'s, over *pairs*."""
    for _ in range(5):
        block(plain, 100)
        block(other, 100)
    ours, theirs = alternate(other, plain, pairs, size)
    extra = [a - b for a, b in zip(ours, theirs, strict=True)]
    q1, median, q3 = statistics.quantiles(extra, n=4)
    return median, q1, q3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=60, help="pairs of blocks per variant")
    parser.add_argument("--block", type=int, default=400, help="requests per block")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to run on (0)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    tmp = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    os.environ.update(
        WIDEEVENTS_DB=str(tmp / "events.duckdb"),
        WIDEEVENTS_INGEST_INTERVAL="0",
        WIDEEVENTS_SERVICE="bench",
    )
    spool = os.open(tmp / "prototype.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    plain = load_app("plain")
    bare = prototype(load_app("plain"), frozenset(), spool)
    variants: list[tuple[str, App]] = [("prototype", bare)]
    for feature in FEATURES:
        app = prototype(load_app("plain"), frozenset([feature]), spool)
        variants.append((f"  + {feature}", app))
    variants.append(("  + all five", prototype(load_app("plain"), frozenset(FEATURES), spool)))
    variants.append(("wideevents", load_app("wideevents")))
    print(f"CPU per request added to plain Flask, {args.pairs} pairs of {args.block} requests:")
    for name, app in variants:
        median, q1, q3 = paired(plain, app, args.pairs, args.block)
        print(f"  {name:14s} {median:5.1f} us  (quartiles {q1:.1f} to {q3:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
