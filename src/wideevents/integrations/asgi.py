"""One wide event per request for any ASGI application (FastAPI, Starlette …).

    app.add_middleware(WideEventsASGIMiddleware)          # Starlette / FastAPI
    app = WideEventsASGIMiddleware(app)                   # any ASGI app

The event is current while the application handles the request (``wideevents.add()`` in an
endpoint reaches it), is named after the route template when the framework records one in
the scope (Starlette and FastAPI set ``scope["route"]``), continues an incoming W3C
``traceparent``, and records status 500 and the exception when one escapes (re-raised).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .. import _internal
from ._http import event_name

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WideEventsASGIMiddleware:
    """Wrap an ASGI app; options as for the WSGI middleware."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        exclude_paths: Iterable[str] = (),
        request_headers: Iterable[str] = (),
        response_headers: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)
        self.request_headers = {h.lower() for h in request_headers}
        self.response_headers = {h.lower() for h in response_headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        import wideevents

        try:
            fields, traceparent = self._request_fields(scope)
            ev = wideevents.event(fields["http.request.method"], **fields)
            ev.continue_trace(traceparent)
        except Exception as exc:  # telemetry never breaks the request
            _internal.report("asgi", exc)
            await self.app(scope, receive, send)
            return
        size = 0

        async def recording_send(message: Message) -> None:
            nonlocal size
            try:
                if message["type"] == "http.response.start":
                    ev.fields["http.response.status_code"] = int(message["status"])
                    for name, value in message.get("headers") or ():
                        low = name.decode("latin-1").lower()
                        if low in self.response_headers:
                            ev.fields[f"http.response.header.{low}"] = value.decode("latin-1")
                elif message["type"] == "http.response.body":
                    size += len(message.get("body") or b"")
            except Exception as exc:
                _internal.report("asgi", exc)
            await send(message)

        with ev:
            try:
                await self.app(scope, receive, recording_send)
            except BaseException:
                ev.fields.setdefault("http.response.status_code", 500)
                raise
            finally:
                ev.fields["http.response.body.size"] = size
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    ev.fields["http.route"] = route
                ev.name = event_name(ev.fields["http.request.method"], ev.fields.get("http.route"))

    def _request_fields(self, scope: Scope) -> tuple[dict[str, Any], str | None]:
        fields: dict[str, Any] = {
            "http.request.method": scope.get("method", "GET"),
            "url.path": scope.get("path") or "/",
            "url.scheme": scope.get("scheme", "http"),
        }
        server = scope.get("server")
        if server:
            fields["server.address"] = server[0]
        client = scope.get("client")
        if client:
            fields["client.address"] = client[0]
        traceparent = None
        for raw_name, raw_value in scope.get("headers") or ():
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "traceparent":
                traceparent = value
            elif name == "user-agent":
                fields["user_agent.original"] = value
            elif name == "host":
                fields["server.address"] = value.rsplit(":", 1)[0]
            elif name == "content-length" and value.isdigit():
                fields["http.request.body.size"] = int(value)
            if name in self.request_headers:
                fields[f"http.request.header.{name}"] = value
        return fields, traceparent
