"""One wide event per request for any WSGI application.

    app.wsgi_app = WideEventsMiddleware(app.wsgi_app, exclude_paths=["/healthz"])

The event is current while the application runs (``wideevents.add()`` in a view reaches it)
and ends when the server closes the response, so streamed bodies are counted. The response
sent, this thread encodes a batch of finished events itself when one waits (see
``Pipeline.after_response``). A W3C
``traceparent`` header continues the caller's trace. Frameworks name the route template by
adding ``http.route`` (Django's integration does); for a Werkzeug app (Flask) the middleware
reads the matched rule when the response starts; without one the event is named after the
method alone. An exception that escapes the application is recorded, counted as
status 500, and re-raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from .. import _internal
from .._client import DEFAULT as _DEFAULT
from .._event import Event
from .._event import current_event as _current_event
from .._pipeline import Pipeline
from ._http import event_name, request_fields

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WideEventsMiddleware:
    """Wrap a WSGI app. ``exclude_paths``: exact paths with no event (health checks);
    ``request_headers`` / ``response_headers``: header names to record (then redacted)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        exclude_paths: Iterable[str] = (),
        request_headers: Iterable[str] = (),
        response_headers: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)
        self.request_headers = tuple(request_headers)
        self.response_headers = {h.lower() for h in response_headers}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self.exclude_paths:
            return self.app(environ, start_response)
        try:
            pipeline = _DEFAULT._pipeline or _DEFAULT._ensure()
            ev = _start(environ, self.request_headers, pipeline)
        except Exception as exc:  # telemetry never breaks the request
            _internal.report("wsgi", exc)
            return self.app(environ, start_response)

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            try:
                if "http.route" not in ev.fields:
                    # Werkzeug keeps its request in the environ (until Flask pops it, after
                    # the response started); Flask's url_rule is None on a 404.
                    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
                    if rule is not None:
                        ev.fields["http.route"] = rule.rule
                ev.fields["http.response.status_code"] = int(status.split(" ", 1)[0])
                for name, value in headers:
                    low = name.lower()
                    if low == "content-length":
                        ev.fields["http.response.body.size"] = int(value)
                    if low in self.response_headers:
                        ev.fields[f"http.response.header.{low}"] = value
            except Exception as exc:
                _internal.report("wsgi", exc)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, recording_start_response)
        except BaseException as exc:
            ev.fields["http.response.status_code"] = 500
            _finish(ev, exc)
            raise
        return _Response(result, ev, pipeline)


def _start(environ: dict[str, Any], headers: tuple[str, ...], pipeline: Pipeline) -> Event:
    fields = request_fields(environ, headers)
    ev = Event(fields["http.request.method"], fields, pipeline)
    traceparent = environ.get("HTTP_TRACEPARENT")
    if traceparent is not None:
        ev.continue_trace(traceparent)
    ev.__enter__()
    return ev


def _finish(ev: Event, exc: BaseException | None = None) -> None:
    fields = ev.fields
    ev.name = event_name(fields["http.request.method"], fields.get("http.route"))
    if exc is not None:
        ev.__exit__(type(exc), exc, exc.__traceback__)
    else:
        ev.__exit__(None, None, None)


class _Response:
    """The app's response iterable, counting bytes; the event ends when it is closed."""

    def __init__(self, result: Iterable[bytes], ev: Event, pipeline: Pipeline) -> None:
        self._result = result
        self._ev = ev
        self._pipeline = pipeline
        self._size = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        if "http.response.body.size" in self._ev.fields:  # Content-Length said it: no counting
            return iter(self._result)
        return self._counted()

    def _counted(self) -> Iterator[bytes]:
        try:
            for chunk in self._result:
                self._size += len(chunk)
                yield chunk
        except BaseException as exc:
            self._ev.exc = exc
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._ev.fields.setdefault("http.response.body.size", self._size)
            _finish(self._ev)
            self._pipeline.after_response()

    def __enter__(self) -> _Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def record_exception(exc: BaseException) -> None:
    """Mark the current request's event as failed by *exc* (for framework error hooks)."""
    ev = _current_event()
    if ev is not None:
        ev.exc = exc
