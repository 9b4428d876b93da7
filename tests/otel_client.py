"""The Python OpenTelemetry SDK with its OTLP/HTTP exporter, as a client process of its own.

python tests/otel_client.py URL SERVICE TRACES [TOKEN]

URL ``-``: the exporter is configured by the standard OTEL_EXPORTER_OTLP_* variables.

Each trace: a server span ``POST /pay`` with a client child ``charge``; every fifth child
fails with an exception. Prints one JSON line per trace (trace id, root and child span ids),
exits 0 only when every span was exported.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main() -> int:
    url, service, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    token = sys.argv[4] if len(sys.argv) > 4 else None
    if url == "-":  # configured as the README says: OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS
        exporter = OTLPSpanExporter(compression=Compression.Gzip)
    else:
        exporter = OTLPSpanExporter(
            endpoint=url + "/v1/traces",
            compression=Compression.Gzip,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": "9.9.9"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=max(2 * count + 10, 2048), max_export_batch_size=512
        )
    )
    tracer = provider.get_tracer("otel-client", "1.0")
    out = []
    for i in range(count):
        with (
            tracer.start_as_current_span(
                "POST /pay",
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "POST",
                    "http.route": "/pay",
                    "pay.amount": i * 1.5,
                    "pay.index": i,
                    "url.full": f"https://pay.example/pay?token=PY-SEKRET-{i}",
                    "http.request.header.authorization": ("Bearer py-abcdefghijklmnop",),
                },
            ) as root,
            tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child,
        ):
            child.set_attribute("card.brand", "visa")
            if i % 5 == 0:
                child.record_exception(TimeoutError("gateway timeout"))
                child.set_status(Status(StatusCode.ERROR, "gateway timeout"))
        r, c = root.get_span_context(), child.get_span_context()
        out.append(
            json.dumps(
                {
                    "trace_id": f"{r.trace_id:032x}",
                    "root": f"{r.span_id:016x}",
                    "child": f"{c.span_id:016x}",
                }
            )
        )
    ok = provider.force_flush(60_000)
    provider.shutdown()
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
