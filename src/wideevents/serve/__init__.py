"""``wideevents serve``: a local web UI for the drill-down, and an OTLP/HTTP trace receiver.

One process on loopback (by default) that serves the UI and its JSON API (:mod:`.api`, the
CLI's commands over HTTP) and receives OTLP/HTTP traces on ``/v1/traces`` (:mod:`.otlp`)
into the same store, through the SDK's redaction. Needs the ``serve`` extra
(``pip install 'wideevents[serve]'``): Starlette, uvicorn and opentelemetry-proto.
"""

from __future__ import annotations

import socket

from .._exceptions import MissingExtraError

try:
    import starlette  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("serve", exc.name or "starlette") from exc

from .app import create_app, is_loopback


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to *host*:*port* (0: any free port), as uvicorn would bind it.

    Bound here rather than by uvicorn so that a busy port is an ``OSError`` the caller can
    word, not a log line and ``sys.exit(3)`` from inside uvicorn.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def run(
    db: str,
    *,
    host: str = "127.0.0.1",
    port: int = 4318,
    token: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted, on *sock* if given (from :func:`listen`), else on a socket
    bound to *host*:*port*. A non-loopback *host* needs a *token* (checked by the CLI)."""
    if not token and not is_loopback(host):
        raise ValueError(f"--host {host} is not loopback: set --token or WIDEEVENTS_SERVE_TOKEN")
    app = create_app(db, token=token, host=host)
    if sock is None:
        sock = listen(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    with sock:
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
    if not server.started:
        raise RuntimeError("the server did not start (see the messages above)")


__all__ = ["create_app", "is_loopback", "listen", "run"]
