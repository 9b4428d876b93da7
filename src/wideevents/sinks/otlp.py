"""Events as OpenTelemetry spans over OTLP/HTTP, for a Collector, Honeycomb, Tempo, Jaeger …

Each event becomes a span with the same trace, span and parent ids, start and end times,
status (ERROR with ``error.message`` when ``error``), every field as an attribute (no
attribute limit: wide events are not truncated) and the resource fields as the Resource.
Endpoint and headers come from the arguments or the standard ``OTEL_EXPORTER_OTLP_*``
variables, so ``WIDEEVENTS_SINKS=otlp`` needs no code.

Spans wait in a bounded buffer for a thread of the sink's own, so a receiver that is down or
slow holds up neither the app nor the other sinks: a full buffer drops new spans and counts
them (``stats()["otlp_dropped_errors"]``), a failed export is counted
(``otlp_export_errors``), logged once and retried with backoff, and delivery resumes when
the receiver is back. ``pip install 'wideevents[otlp]'``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from .. import _internal
from .._exceptions import MissingExtraError
from .._version import __version__
from ._base import Batch, Sink

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("otlp", "opentelemetry-exporter-otlp-proto-http") from exc

RESOURCE_KEYS = (
    "service.name",
    "service.version",
    "deployment.environment.name",
    "host.name",
    "process.pid",
)
_NOT_ATTRIBUTES = {
    "timestamp",
    "duration_ms",
    "name",
    "trace_id",
    "span_id",
    "parent_id",
    *RESOURCE_KEYS,
}
_SCOPE = InstrumentationScope("wideevents", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _attribute(value: Any) -> Any:
    """An OTel attribute value: scalars as they are, homogeneous lists of scalars as lists,
    anything else as its JSON text; None for nothing."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def _nanos(timestamp: str) -> int:
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


class OTLPSink(Sink):
    """Spans over OTLP/HTTP (protobuf). ``endpoint``: the traces URL (default from
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""

    inline_safe = True  # export only builds spans and hands them to the sink's own thread

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        max_buffer: int = 50_000,
        batch_size: int = 512,
    ) -> None:
        self._exporter_args: dict[str, Any] = {
            "endpoint": endpoint,
            "headers": headers,
            "timeout": timeout,
        }
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self._resources: dict[tuple[Any, ...], Resource] = {}
        self._start()

    def _start(self) -> None:
        self._exporter = OTLPSpanExporter(**self._exporter_args)
        self._buffer: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._inflight = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- the pipeline's worker --------------------------------------------------------------

    def export(self, batch: Batch) -> None:
        spans = [self._span(r) for r in batch.records]
        with self._lock:
            room = self.max_buffer - len(self._buffer) - self._inflight
            if room < len(spans):
                _internal.STATS["otlp_dropped_errors"] += len(spans) - max(room, 0)
                spans = spans[: max(room, 0)]
            self._buffer.extend(spans)
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._run, name="wideevents-otlp", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _span(self, r: Mapping[str, Any]) -> ReadableSpan:
        trace_id = int(r["trace_id"], 16)
        context = SpanContext(trace_id, int(r["span_id"], 16), False, _SAMPLED)
        parent = (
            SpanContext(trace_id, int(r["parent_id"], 16), False, _SAMPLED)
            if r.get("parent_id")
            else None
        )
        start = _nanos(r["timestamp"])
        end = start + int(float(r.get("duration_ms") or 0.0) * 1_000_000)
        attributes = {}
        for key, value in r.items():
            if key not in _NOT_ATTRIBUTES:
                converted = _attribute(value)
                if converted is not None:
                    attributes[key] = converted
        status = (
            Status(StatusCode.ERROR, str(r.get("error.message") or r.get("error.type") or ""))
            if r.get("error")
            else Status(StatusCode.UNSET)
        )
        kind = (
            SpanKind.SERVER if "http.request.method" in r and parent is None else SpanKind.INTERNAL
        )
        return ReadableSpan(
            name=str(r["name"]),
            context=context,
            parent=parent,
            resource=self._resource(r),
            attributes=attributes,
            kind=kind,
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=_SCOPE,
        )

    def _resource(self, r: Mapping[str, Any]) -> Resource:
        key = tuple(r.get(k) for k in RESOURCE_KEYS)
        resource = self._resources.get(key)
        if resource is None:
            resource = Resource(
                {k: v for k, v in zip(RESOURCE_KEYS, key, strict=True) if v is not None}
            )
            if len(self._resources) > 256:
                self._resources.clear()
            self._resources[key] = resource
        return resource

    # -- the sink's own thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while True:
            with self._lock:
                while not self._buffer and not self._stop:
                    self._wake.wait()
                if not self._buffer and self._stop:
                    return
                n = min(self.batch_size, len(self._buffer))
                spans = [self._buffer.popleft() for _ in range(n)]
                self._inflight = n
            try:
                ok = self._exporter.export(spans) is SpanExportResult.SUCCESS
            except Exception as exc:
                _internal.report("otlp_export", exc, reraise=False)
                ok = False
            with self._lock:
                self._inflight = 0
                if not ok:
                    self._buffer.extendleft(reversed(spans))  # first in line when it is back
                self._wake.notify_all()
            if ok:
                backoff = 0.5
            else:
                _internal.report(
                    "otlp_export",
                    ConnectionError(
                        f"the OTLP receiver did not take {len(spans)} spans; "
                        "they are kept and retried with backoff"
                    ),
                    reraise=False,
                )
                if self._stop:
                    return
                with self._lock:
                    self._wake.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered span was delivered (at most *timeout*, default 30 s);
        False when some are still waiting."""
        deadline = time.monotonic() + (30.0 if timeout is None else timeout)
        with self._lock:
            while self._buffer or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within *timeout* (default 5 s), then stop."""
        self.flush(5.0 if timeout is None else timeout)
        with self._lock:
            self._stop = True
            self._wake.notify_all()
            left = len(self._buffer)
        if left:
            _internal.STATS["otlp_dropped_errors"] += left
        thread = self._thread
        if thread is not None:
            thread.join(1.0)
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    def after_fork(self) -> None:
        # The parent's buffer and thread are the parent's; the HTTP session is not shared.
        self._start()


def from_spec(arg: str) -> OTLPSink:
    return OTLPSink(arg or None)
