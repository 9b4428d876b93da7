"""The Flask app that ``bench_http.py`` serves under gunicorn, in one of three variants.

``BENCH_VARIANT`` picks the instrumentation, set up in each worker (no ``--preload``):

* ``plain``: none;
* ``wideevents``: ``WideEvents(app)`` with the default sink, the DuckDB store at
  ``WIDEEVENTS_DB`` (its background ingester on unless ``WIDEEVENTS_INGEST_INTERVAL=0``);
* ``otel``: ``FlaskInstrumentor`` with a ``TracerProvider`` and a ``BatchSpanProcessor``
  exporting OTLP/HTTP to ``BENCH_OTLP_ENDPOINT``.

Each view does a little work (a dict built and returned as JSON) and hands two business
fields to its telemetry, as an instrumented app would: ``wideevents.add()``, a span's
``set_attributes()``, or nothing. Every worker counts the requests its views served and
writes the count to ``BENCH_COUNT_DIR`` when it exits, so the benchmark can check the
store against what the app really served (wrk does not count requests still in flight when
it stops).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

VARIANT = os.environ.get("BENCH_VARIANT", "plain")
HEALTH = "/healthz"
TIERS = ("free", "pro", "enterprise")

app = Flask(__name__)
annotate: Callable[[dict[str, Any]], None]

if VARIANT == "plain":

    def annotate(fields: dict[str, Any]) -> None:
        pass

elif VARIANT == "wideevents":
    import wideevents
    from wideevents.integrations.flask import WideEvents

    WideEvents(app, exclude_paths=[HEALTH])
    _add = wideevents.add

    def annotate(fields: dict[str, Any]) -> None:
        _add(**fields)

elif VARIANT == "otel":
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    _provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["BENCH_OTLP_ENDPOINT"]))
    )
    trace.set_tracer_provider(_provider)
    FlaskInstrumentor().instrument_app(app, excluded_urls=HEALTH.lstrip("/"))
    _current_span = trace.get_current_span

    def annotate(fields: dict[str, Any]) -> None:
        _current_span().set_attributes(fields)

else:  # pragma: no cover - a typo in the benchmark
    raise RuntimeError(f"unknown BENCH_VARIANT {VARIANT!r}")


# -- what the app served -----------------------------------------------------------------

_served = 0


def _write_count() -> None:
    folder = os.environ.get("BENCH_COUNT_DIR")
    if folder:
        name = f"{os.getpid()}-{time.time_ns()}.count"
        with open(os.path.join(folder, name), "w") as out:
            out.write(str(_served))


atexit.register(_write_count)


# -- the views ---------------------------------------------------------------------------


@app.get("/users/<int:user_id>")
def user(user_id: int) -> dict[str, Any]:
    global _served
    _served += 1
    tier = TIERS[user_id % 3]
    annotate({"user.id": user_id, "user.tier": tier})
    digest = hashlib.blake2b(str(user_id).encode(), digest_size=8).hexdigest()
    return {
        "id": user_id,
        "name": f"user-{user_id}",
        "tier": tier,
        "avatar": f"https://cdn.example.com/avatars/{digest}.png",
        "limits": {"orders_per_day": 10 * (1 + user_id % 3), "cart_items": 50},
    }


@app.get("/items")
def items() -> dict[str, Any]:
    global _served
    _served += 1
    rows = [
        {"sku": f"SKU-{i:05d}", "price": round(3.5 + i * 1.25, 2), "in_stock": i % 4 != 0}
        for i in range(20)
    ]
    total = round(sum(r["price"] for r in rows if r["in_stock"]), 2)
    annotate({"items.count": len(rows), "items.total": total})
    return {"items": rows, "count": len(rows), "total": total}


@app.get(HEALTH)
def health() -> str:
    return "ok"
