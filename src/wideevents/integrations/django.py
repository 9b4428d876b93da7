"""Django: one wide event per request, named after the URL pattern.

    MIDDLEWARE = ["wideevents.integrations.django.WideEventsMiddleware", ...]  # first
    WIDEEVENTS = {"service": "shop", "exclude_paths": ["/healthz"]}           # optional

``settings.WIDEEVENTS`` takes the arguments of ``wideevents.configure()`` plus the
middleware's ``exclude_paths``, ``request_headers`` and ``response_headers``. The route is
the resolver's pattern (``/users/<int:id>``); a 404 has none. A view that raises is recorded
with status 500 and Django handles the exception as it always does. Once Django has sent a
response (``request_finished``), its thread encodes a batch of finished events itself when
one waits (see ``Pipeline.after_response``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._exceptions import MissingExtraError

try:
    from django.conf import settings
    from django.core.signals import request_finished
    from django.http import HttpRequest, HttpResponseBase
except ImportError as exc:  # pragma: no cover - exercised without django installed
    raise MissingExtraError("django", "django") from exc

from .. import _internal
from .._client import DEFAULT as _DEFAULT
from .._event import Event
from ._http import event_name, request_fields
from .wsgi import record_exception

__all__ = ["WideEventsMiddleware"]

_MIDDLEWARE_OPTIONS = ("exclude_paths", "request_headers", "response_headers")
_configured = threading.Lock()
_done = False


_DRAINS: dict[Any, bool] = {}  # per handler class: whether its thread may drain the queue


def _after_response(sender: Any = None, **_: Any) -> None:
    try:
        drains = _DRAINS.get(sender)
        if drains is None:
            # Under ASGI, Django closes responses on the one thread its sync code shares:
            # draining there would hold up other requests. WSGI servers give each its own.
            # No sender: a response no handler returned (ASGI's early 400 and 413), on a
            # thread that may be the shared one.
            mro = getattr(sender, "__mro__", ())
            asgi = any(c.__name__ == "ASGIHandler" for c in mro)
            drains = _DRAINS[sender] = sender is not None and not asgi
        pipeline = _DEFAULT._pipeline
        if drains and pipeline is not None:
            pipeline.after_response()
    except Exception as exc:  # pragma: no cover - after_response guards its parts
        _internal.report("django", exc)


request_finished.connect(_after_response, dispatch_uid="wideevents.after_response")


def _configure_once(options: dict[str, Any]) -> None:
    global _done
    with _configured:
        if _done:
            return
        _done = True
        sdk = {k: v for k, v in options.items() if k not in _MIDDLEWARE_OPTIONS}
        if sdk:
            import wideevents

            wideevents.configure(**sdk)


class WideEventsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        options = dict(getattr(settings, "WIDEEVENTS", {}) or {})
        _configure_once(options)
        self.exclude_paths = frozenset(options.get("exclude_paths", ()))
        self.request_headers = tuple(options.get("request_headers", ()))
        self.response_headers = {h.lower() for h in options.get("response_headers", ())}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info in self.exclude_paths:
            return self.get_response(request)
        import wideevents

        try:
            fields = request_fields(request.META, self.request_headers)
            ev = wideevents.event(fields["http.request.method"], **fields)
            ev.continue_trace(request.META.get("HTTP_TRACEPARENT"))
        except Exception as exc:  # telemetry never breaks the request
            _internal.report("django", exc)
            return self.get_response(request)
        with ev:
            try:
                response = self.get_response(request)
            except BaseException:
                ev.fields["http.response.status_code"] = 500
                self._name(ev, request)
                raise
            self._record_response(ev, request, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        record_exception(exception)  # Django turns it into a 500 response afterwards

    def _record_response(self, ev: Event, request: HttpRequest, response: HttpResponseBase) -> None:
        try:
            ev.fields["http.response.status_code"] = response.status_code
            if not response.streaming:
                ev.fields["http.response.body.size"] = len(response.content)
            for name in self.response_headers:
                if name in response:
                    ev.fields[f"http.response.header.{name}"] = response[name]
            self._name(ev, request)
        except Exception as exc:
            _internal.report("django", exc)

    @staticmethod
    def _name(ev: Event, request: HttpRequest) -> None:
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None) if match is not None else None
        if route is not None:
            route = "/" + route.lstrip("^").rstrip("$").lstrip("/")
            ev.fields["http.route"] = route
        ev.name = event_name(ev.fields["http.request.method"], route)
