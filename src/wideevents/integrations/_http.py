"""What every HTTP integration records, from a WSGI environ (Django's ``request.META`` too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def request_fields(environ: Mapping[str, Any], headers: Iterable[str] = ()) -> dict[str, Any]:
    """The OpenTelemetry HTTP server fields of DESIGN §2, plus the named request headers.

    Headers are recorded only when named (``http.request.header.<name>``), and then pass
    through redaction like every field: ``Authorization`` and ``Cookie`` never leave in clear.
    """
    fields: dict[str, Any] = {
        "http.request.method": environ.get("REQUEST_METHOD", "GET"),
        "url.path": environ.get("PATH_INFO") or "/",
        "url.scheme": environ.get("wsgi.url_scheme", "http"),
    }
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    if host:
        fields["server.address"] = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        fields["user_agent.original"] = agent
    client = environ.get("REMOTE_ADDR")
    if client:
        fields["client.address"] = client
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            fields["http.request.body.size"] = int(length)
        except ValueError:
            pass
    for name in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() in ("content-type", "content-length"):
            key = key[5:]
        value = environ.get(key)
        if value is not None:
            fields[f"http.request.header.{name.lower()}"] = value
    return fields


def event_name(method: str, route: str | None) -> str:
    """``GET /users/<id>``: the method and route template, or the method alone (404s)."""
    return f"{method} {route}" if route else method
