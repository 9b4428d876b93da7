"""Bridges with OpenTelemetry, for a codebase that already has OTel instrumentation.

* :func:`join_otel_traces`: an event opened inside an active OTel span (one started by
  ``opentelemetry-instrumentation-requests``, Django's or yours) becomes that span's child,
  in the same trace; with ``spans_inside=True``, spans started inside an open event (an
  outgoing call traced by OTel inside a request the middleware records) become the event's
  children too.
* :class:`WideEventsSpanProcessor`: spans from existing OTel instrumentation become wide
  events in wideevents' sinks, redacted and sampled like any other, so they land in the
  store and the query CLI works on them::

      from opentelemetry import trace
      from opentelemetry.sdk.trace import TracerProvider
      from wideevents.otel import WideEventsSpanProcessor

      provider = TracerProvider()
      provider.add_span_processor(WideEventsSpanProcessor())
      trace.set_tracer_provider(provider)

Needs ``opentelemetry-sdk`` (``pip install 'wideevents[otlp]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _event, _internal
from ._client import DEFAULT, WideEvents
from ._exceptions import MissingExtraError
from ._spans import span_event

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("otlp", "opentelemetry-sdk") from exc

if TYPE_CHECKING:
    from opentelemetry.context import Context

__all__ = ["WideEventsSpanProcessor", "join_otel_traces"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _active_span_ids() -> tuple[int, int] | None:
    context = otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        return context.trace_id, context.span_id
    return None


def _enter(ev: _event.Event) -> object:
    """Make the event the current span for OpenTelemetry; the token for :func:`_exit`."""
    try:
        span = NonRecordingSpan(
            SpanContext(ev.trace_id, ev.span_id, is_remote=False, trace_flags=_SAMPLED)
        )
        return otel_context.attach(otel_trace.set_span_in_context(span))
    except Exception as exc:  # telemetry never breaks the app
        _internal.report("otel_bridge", exc)
        return None


def _exit(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]  # (logs a failure, never raises)


def join_otel_traces(enabled: bool = True, *, spans_inside: bool = False) -> None:
    """Events join OpenTelemetry's traces: a root event opened inside an active OTel span
    joins its trace, as its child.

    ``spans_inside``: the other way too. While an event is open it is OTel's current span,
    marked sampled: spans that OTel instrumentation starts inside it (an outgoing call traced
    by ``opentelemetry-instrumentation-requests``) are its children, recorded whatever OTel's
    sampler would say of a new trace, and OTel's propagators send the event's trace on. For
    when wideevents is where those spans go (:class:`WideEventsSpanProcessor`): a tracing
    backend that gets them too never sees the event's span, so its traces would have a
    parent missing.
    """
    _event._otel_exit = _exit  # first, and kept when turned off: an open event detaches
    _event._otel_parent = _active_span_ids if enabled else None
    _event._otel_enter = _enter if enabled and spans_inside else None


class WideEventsSpanProcessor(SpanProcessor):
    """Turn every finished OTel span into a wide event of *client* (default: the SDK's).

    The mapping (shared with the OTLP receiver of ``wideevents serve``) is
    :func:`wideevents._spans.span_event`: name, ids, times and attributes; an ERROR status
    becomes ``error`` with ``error.message``; the span's exception event gives ``error.type``.
    Installing it also turns on :func:`join_otel_traces` (as it was, or without
    ``spans_inside``), so events opened inside spans share their traces.
    """

    def __init__(self, client: WideEvents = DEFAULT) -> None:
        self._client = client
        join_otel_traces(spans_inside=_event._otel_enter is not None)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or span.start_time is None or span.end_time is None:
            return
        pipeline = self._client._pipeline or self._client._ensure()
        scope = span.instrumentation_scope
        event = span_event(
            pipeline,
            span.name,
            trace_id=context.trace_id,
            span_id=context.span_id,
            parent_id=span.parent.span_id if span.parent is not None else 0,
            start_ns=span.start_time,
            end_ns=span.end_time,
            attributes=span.attributes or {},
            kind=span.kind.name.lower(),
            error=span.status.status_code is StatusCode.ERROR,
            status_message=span.status.description or "",
            events=[(e.name, e.timestamp, e.attributes or {}) for e in span.events],
            scope_name=scope.name if scope is not None else None,
        )
        pipeline.submit(event)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._client.flush(timeout_millis / 1000)
