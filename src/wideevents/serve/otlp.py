"""The OTLP/HTTP trace receiver: ``POST /v1/traces`` → one wide event per span → the spool.

Both encodings of the OTLP/HTTP spec: binary protobuf (``application/x-protobuf``, what the
SDKs send by default) and JSON (``application/json``, ids in hex), optionally gzip-compressed.
A request is decoded whole before anything of it is kept, so a malformed body is refused
(400, with a message) without touching what earlier requests delivered. Bodies over
:data:`MAX_BODY` bytes, before or after decompression, are refused (413) without being
decompressed further: a gzip bomb stops at the limit. A request of more than
:data:`MAX_SPANS` spans is refused whole (413) before any event is built: a span takes some
kilobytes as an event, so 16 MiB of tiny spans would otherwise take gigabytes.

Each span goes through :func:`wideevents._spans.span_event` (the mapping the in-process span
processor uses), then through a pipeline of the SDK with its redaction, and into the store's
spool, before the request is answered: a 200 means the spans are on disk.
"""

from __future__ import annotations

import base64
import os
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from .._config import Config
from .._event import Event, clock_offset
from .._pipeline import Pipeline
from .._redact import Redaction
from .._spans import span_event
from ..sinks.duckdb import DuckDBSink
from ..store.paths import StorePaths

try:
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from .._exceptions import MissingExtraError

    raise MissingExtraError("serve", "opentelemetry-proto") from exc

MAX_BODY = 16 << 20
"""The largest request body accepted, in bytes, compressed and again decompressed."""

MAX_SPANS = 50_000
"""The most spans one request may carry (exporters send 512 a batch by default)."""

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "internal",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}


class OTLPError(ValueError):
    """A request the receiver refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def gunzip(body: bytes, limit: int = MAX_BODY) -> bytes:
    """Decompress a gzip body, every member of it (as ``gzip -d`` does), refusing (413) as
    soon as the output passes *limit*."""
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while True:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = d.decompress(rest, limit + 1 - size)  # at least 1: 0 would mean no limit
            size += len(part)
            if size > limit:
                raise OTLPError(413, f"the decompressed body is over {limit} bytes")
            parts.append(part)
            part = d.flush()
            size += len(part)
            if size > limit:
                raise OTLPError(413, f"the decompressed body is over {limit} bytes")
            parts.append(part)
            if not d.eof:
                raise OTLPError(400, "the body is not valid gzip: it ends early")
            rest = d.unused_data.lstrip(b"\x00")  # zero padding after a member, as gzip allows
            if not rest:
                return b"".join(parts)
    except zlib.error as exc:
        raise OTLPError(400, f"the body is not valid gzip: {exc}") from None


def decode(body: bytes, content_type: str, max_spans: int = MAX_SPANS) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from a protobuf or JSON body; 400/415 when it is not one,
    413 when it holds more than *max_spans* spans."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == PROTOBUF:
        try:
            message: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(body)
        except DecodeError as exc:
            raise OTLPError(400, f"the body is not an OTLP protobuf trace request: {exc}") from None
        _check_spans(
            sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans),
            max_spans,
        )
        return message
    if kind == JSON:
        try:
            doc = orjson.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("the top level is not an object")
            spans = _hex_ids_to_base64(doc)
        except (ValueError, TypeError, AttributeError) as exc:
            raise OTLPError(400, f"the body is not an OTLP JSON trace request: {exc}") from None
        _check_spans(spans, max_spans)
        try:
            parsed = ExportTraceServiceRequest()
            json_format.ParseDict(doc, parsed, ignore_unknown_fields=True)
            return parsed
        except (ValueError, json_format.ParseError, TypeError, AttributeError) as exc:
            raise OTLPError(400, f"the body is not an OTLP JSON trace request: {exc}") from None
    raise OTLPError(415, f"Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")


def _check_spans(spans: int, max_spans: int) -> None:
    if spans > max_spans:
        raise OTLPError(
            413,
            f"{spans} spans in one request, over the limit of {max_spans}: send smaller "
            "batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)",
        )


def _hex_ids_to_base64(doc: dict[str, Any]) -> int:
    """OTLP/JSON writes ids in hex where protobuf's JSON mapping expects base64.

    Returns the number of spans."""
    spans = 0
    for rs in _list(doc, "resourceSpans", "resource_spans"):
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            for span in _list(ss, "spans"):
                spans += 1
                _fix(span, ("traceId", "trace_id", "spanId", "span_id"))
                _fix(span, ("parentSpanId", "parent_span_id"))
                for link in _list(span, "links"):
                    _fix(link, ("traceId", "trace_id", "spanId", "span_id"))
    return spans


def _list(obj: Any, *keys: str) -> Iterator[Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, found {type(obj).__name__}")
    for key in keys:
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise ValueError(f"{key} is not a list")
            yield from value


def _fix(obj: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, found {type(obj).__name__}")
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value and len(value) in (16, 32):
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise ValueError(f"{key} {value!r} is not hex") from None


def _value(v: AnyValue) -> Any:
    text = v.string_value  # most attributes are strings: one lookup, no WhichOneof
    if text:
        return text
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        raw = v.bytes_value
        try:
            return raw.decode()  # text, so redaction reads it (a token sent as bytes)
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode()
    return getattr(v, kind)


def _attributes(kvs: Any) -> dict[str, Any]:
    value = _value
    return {kv.key: value(kv.value) for kv in kvs}


def store_pipeline(db: str | os.PathLike[str]) -> tuple[Pipeline, DuckDBSink]:
    """The SDK's pipeline with default redaction, writing to *db*'s spool.

    No resource of its own (each span brings its service's), no sampling (the sender
    sampled already). The sink starts the store's ingester in the background as the SDK
    does, so a server that receives and is never queried does not grow its spool for ever.
    """
    sink = DuckDBSink(db)
    config = Config(
        sinks=[sink],
        redaction=Redaction(hash_secret=os.environ.get("WIDEEVENTS_HASH_SECRET")),
        rules=(),
        resource={},
    )
    return Pipeline(config), sink


class Receiver:
    """Turns decoded OTLP requests into events in the store at *db*; thread-safe."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.paths = StorePaths.for_db(db)
        self.pipeline, self.sink = store_pipeline(self.paths.db)
        self.accepted = 0
        self._lock = threading.Lock()

    def accept(self, request: ExportTraceServiceRequest) -> tuple[int, int, str]:
        """Write every valid span as an event; returns (accepted, rejected, why rejected)."""
        events: list[Event] = []
        rejected = 0
        why = ""
        offset = clock_offset()
        pipeline = self.pipeline
        error_code = Status.STATUS_CODE_ERROR
        for rs in request.resource_spans:
            resource = _attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                scope_name = ss.scope.name or None
                for span in ss.spans:
                    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                    if len(trace_id) != 16 or len(span_id) != 8 or len(parent) not in (0, 8):
                        rejected += 1
                        why = "a span with a trace_id that is not 16 bytes or a span_id not 8"
                        continue
                    events.append(
                        span_event(
                            pipeline,
                            span.name,
                            trace_id=int.from_bytes(trace_id, "big"),
                            span_id=int.from_bytes(span_id, "big"),
                            parent_id=int.from_bytes(parent, "big") if parent else 0,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            kind=_KINDS.get(span.kind, "internal"),
                            error=span.status.code == error_code,
                            status_message=span.status.message,
                            events=[
                                (e.name, e.time_unix_nano, _attributes(e.attributes))
                                for e in span.events
                            ],
                            scope_name=scope_name,
                            resource=resource,
                            offset=offset,
                        )
                    )
        if not events:
            return 0, rejected, why
        with self._lock:  # so a failed write is blamed on the request that made it
            lost_before = self.sink.writer.lines_lost
            written = self.pipeline.export_now(events)
            if self.sink.writer.lines_lost != lost_before:
                raise OTLPError(503, "the store could not be written (disk full or read-only?)")
            self.accepted += written
        rejected += len(events) - written
        return written, rejected, why

    def seal(self) -> None:
        """Make what was received so far visible to the next ingest (a query's, first)."""
        self.pipeline.flush(timeout=10.0)

    def close(self) -> None:
        """Seal the spool segment so the spans are ingested even if serve never queries."""
        self.pipeline.shutdown(timeout=10.0)


def response(content_type: str, rejected: int, why: str) -> bytes:
    """The ExportTraceServiceResponse, in the request's encoding."""
    message = ExportTraceServiceResponse()
    if rejected:
        message.partial_success.rejected_spans = rejected
        message.partial_success.error_message = why or "spans could not be encoded"
    if content_type == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode()
    data: bytes = message.SerializeToString()
    return data


def status_body(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` for an error answer, in the request's encoding.

    Written by hand (two fields) rather than pulling in googleapis-common-protos.
    """
    if content_type == JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


__all__ = [
    "MAX_BODY",
    "MAX_SPANS",
    "OTLPError",
    "Receiver",
    "decode",
    "gunzip",
    "response",
    "status_body",
]
