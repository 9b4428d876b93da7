"""The Starlette app of ``wideevents serve``: the UI, its JSON API and the OTLP receiver.

Access: on loopback with no token, only requests that name this machine in their ``Host``
header are served (a web page elsewhere cannot reach the API through DNS rebinding). With a
token, every ``/api/`` and ``/v1/`` request must carry ``Authorization: Bearer TOKEN``,
compared in constant time. The page and its scripts (the same public files as in the wheel,
no data) load without it; the page takes the token once from ``?token=``, keeps it in the
tab's ``sessionStorage`` and drops it from the address bar.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from . import otlp
from .api import Api, error_response

STATIC = Path(__file__).parent / "static"


# The page runs only its own script and talks only to this server; ECharts sets inline
# styles. A crafted link cannot load script from elsewhere or frame the page.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header: ``[::1]:4318`` → ``::1``, ``localhost:80`` → ``localhost``."""
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class LoopbackHost:
    """ASGI middleware: serve only requests whose ``Host`` names this machine by a loopback
    address or ``localhost``, so a page on another name that resolves here cannot read the
    store (DNS rebinding). Starlette's ``TrustedHostMiddleware`` cuts ``[::1]:4318`` at the
    first colon, and answers in plain text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = ""
            for name, value in scope.get("headers", ()):
                if name == b"host":
                    header = value.decode("latin-1")
                    break
            if not is_loopback(host_name(header)):
                response = error_response(
                    400,
                    f"Invalid host header {header!r}: on loopback without a token, open this "
                    "server as 127.0.0.1, [::1] or localhost",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerToken:
    """ASGI middleware: ``/api/`` and ``/v1/`` need ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(("/api/", "/v1/")):
            got = b""
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    got = value
                    break
            if not hmac.compare_digest(got, self.expected):
                message = (
                    "missing or wrong token: open the UI as /?token=TOKEN, "
                    "or send Authorization: Bearer TOKEN"
                )
                response = Response(
                    json.dumps({"error": message}),
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type="application/json",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Traces:
    """``POST /v1/traces``.

    At most *decodes* requests are decompressed, decoded and written at once (the work holds
    the GIL anyway, and each takes up to a few hundred MB while it runs); the others wait up
    to *wait* seconds for their turn, then get a 503 with ``Retry-After``, which OTLP
    exporters honour.
    """

    def __init__(
        self,
        receiver: otlp.Receiver,
        max_body: int = otlp.MAX_BODY,
        *,
        decodes: int = 2,
        wait: float = 5.0,
    ) -> None:
        self.receiver = receiver
        self.max_body = max_body
        self.wait = wait
        self._turns = asyncio.Semaphore(decodes)

    async def handle(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        answer = otlp.JSON if kind == otlp.JSON else otlp.PROTOBUF
        encoding = request.headers.get("content-encoding", "identity").lower()
        try:
            body = await self._body(request)
            try:
                await asyncio.wait_for(self._turns.acquire(), self.wait)
            except asyncio.TimeoutError:
                raise otlp.OTLPError(503, "busy with other requests: retry shortly") from None
            try:
                # Decompressing and decoding 16 MiB takes a while: off the event loop.
                rejected, why = await run_in_threadpool(self._accept, body, encoding, kind)
            finally:
                self._turns.release()
        except otlp.OTLPError as exc:
            code = {400: 3, 413: 8, 415: 3, 503: 14}.get(exc.status, 2)
            return Response(
                otlp.status_body(answer, code, exc.message),
                exc.status,
                headers={"Retry-After": "1"} if exc.status == 503 else None,
                media_type=answer,
            )
        return Response(otlp.response(answer, rejected, why), 200, media_type=answer)

    def _accept(self, body: bytes, encoding: str, kind: str) -> tuple[int, str]:
        if encoding == "gzip":
            body = otlp.gunzip(body, self.max_body)
        elif encoding != "identity":
            raise otlp.OTLPError(415, "Content-Encoding: send gzip or nothing")
        _, rejected, why = self.receiver.accept(otlp.decode(body, kind))
        return rejected, why

    async def _body(self, request: Request) -> bytes:
        """The body, up to the limit. A body over it is still read (and dropped) up to four
        times the limit, so the client can read the 413 rather than meet a broken pipe."""
        limit = self.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > 4 * limit:
            raise otlp.OTLPError(413, f"the body is over {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > 4 * limit:
                break
        if size > limit:
            raise otlp.OTLPError(413, f"the body is over {limit} bytes")
        return b"".join(chunks)


def create_app(
    db: str,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    max_body: int = otlp.MAX_BODY,
) -> Starlette:
    """The whole server for the store at *db*."""
    receiver = otlp.Receiver(db)
    api = Api(db, before_read=receiver.seal)

    async def index(request: Request) -> Response:
        page = STATIC / "index.html"
        if not page.exists():
            return error_response(500, "the UI is not built: run `make ui` in a checkout")
        return FileResponse(page, headers={"Cache-Control": "no-store", **PAGE_HEADERS})

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own answers (404, 405 …) are plain text; the API's are JSON.
        assert isinstance(exc, HTTPException)
        path = request.url.path
        message = {
            404: f"nothing at {path}",
            405: f"{request.method} is not allowed on {path}",
        }.get(exc.status_code, exc.detail)
        response = error_response(exc.status_code, message)
        response.headers.update(exc.headers or {})
        return response

    async def failure(request: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(receiver.close)

    routes: list[Any] = [
        Route("/", index),
        Route("/v1/traces", Traces(receiver, max_body).handle, methods=["POST"]),
        Route("/api/query", api.query),
        Route("/api/breakdown", api.breakdown),
        Route("/api/events", api.events),
        Route("/api/trace/{trace_id}", api.trace),
        Route("/api/fields", api.fields),
    ]
    if (STATIC / "assets").is_dir():
        routes.append(Mount("/assets", StaticFiles(directory=STATIC / "assets")))
    middleware = []
    if token:
        middleware.append(Middleware(BearerToken, token=token))
    elif is_loopback(host):
        middleware.append(Middleware(LoopbackHost))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: failure},
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app
