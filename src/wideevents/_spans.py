"""One OpenTelemetry span as one wide event: the mapping both span paths share.

Used by :class:`wideevents.otel.WideEventsSpanProcessor` (spans finished in this process) and
by the OTLP receiver of ``wideevents serve`` (spans decoded from another process), so a span
becomes the same event whichever way it arrives. No OpenTelemetry import here: callers pass
plain values.

The event keeps the span's name, ids and times; its attributes flattened under their OTel
names (resource attributes first, a span attribute of the same name wins); an ERROR status
becomes ``error`` with ``error.message``, and an ``exception`` span event gives
``error.type``; ``otel.span.kind`` and ``otel.scope.name``; other span events as a list in
``otel.span.events``. HTTP attributes under their names from before OpenTelemetry's stable
HTTP conventions (``http.method``, ``http.status_code``, ``http.url`` …, still the default of
many instrumentations) are renamed to the stable ones, so an outgoing call traced by OTel and
a request recorded by the SDK are queried with the same fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ._event import Event, Submitter, clock_offset

# Deprecated HTTP attribute -> its stable name (OpenTelemetry's HTTP migration guide).
STABLE_HTTP = {
    "http.method": "http.request.method",
    "http.status_code": "http.response.status_code",
    "http.url": "url.full",
    "http.scheme": "url.scheme",
    "http.user_agent": "user_agent.original",
    "http.client_ip": "client.address",
    "http.request_content_length": "http.request.body.size",
    "http.response_content_length": "http.response.body.size",
}

SpanEvent = tuple[str, int, Mapping[str, Any]]
"""A span event: (name, time in ns since the epoch, attributes)."""


def span_event(
    submitter: Submitter,
    name: str,
    *,
    trace_id: int,
    span_id: int,
    parent_id: int,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    kind: str,
    error: bool = False,
    status_message: str = "",
    events: Iterable[SpanEvent] = (),
    scope_name: str | None = None,
    resource: Mapping[str, Any] | None = None,
    offset: float | None = None,
) -> Event:
    """An ended :class:`Event` for one span, ready for ``submitter.submit()``.

    *offset* is ``clock_offset()``, the wall clock less the monotonic one (the pipeline keeps
    times on the monotonic clock); pass one per batch of spans, or leave it to be read here.
    """
    fields: dict[str, Any] = {**resource, **attributes} if resource else dict(attributes)
    if "http.method" in fields or "http.status_code" in fields:
        for old, stable in STABLE_HTTP.items():
            if old in fields and stable not in fields:
                fields[stable] = fields.pop(old)
    others: list[dict[str, Any]] = []
    for ev_name, ev_time, ev_attrs in events:
        if error and ev_name == "exception" and ev_attrs:
            fields.setdefault("error.type", ev_attrs.get("exception.type"))
            fields.setdefault("error.message", ev_attrs.get("exception.message"))
        else:
            others.append({"name": ev_name, "timestamp": _iso(ev_time), **ev_attrs})
    if error:
        fields["error"] = True
        if status_message:
            fields.setdefault("error.message", status_message)
    if others:
        fields["otel.span.events"] = others
    fields["otel.span.kind"] = kind
    if scope_name:
        fields["otel.scope.name"] = scope_name
    event = Event(name, fields, submitter)
    event.trace_id = trace_id
    event.span_id = span_id
    event.parent_id = parent_id
    if offset is None:
        offset = clock_offset()
    event._t0 = start_ns / 1e9 - offset
    event._t1 = max(end_ns, start_ns) / 1e9 - offset
    event._root = None  # a root of its own
    event._trace_fields = None
    return event


def _iso(ns: int) -> str:
    return (
        datetime.fromtimestamp(ns // 1000 / 1e6, timezone.utc)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )
