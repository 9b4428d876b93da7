"""``wideevents serve``: a local web UI for the drill-down, and an OTLP/HTTP trace receiver.

One process on loopback (by default) that serves the UI and its JSON API (:mod:`.api`, the
CLI's commands over HTTP) and receives OTLP/HTTP traces on ``/v1/traces`` (:mod:`.otlp`)
into the same store, through the SDK's redaction. Needs the ``serve`` extra
(``pip install 'wideevents[serve]'``): Starlette, uvicorn and opentelemetry-proto.
"""

from __future__ import annotations

from .._exceptions import MissingExtraError

try:
    import starlette  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("serve", exc.name or "starlette") from exc

from .app import create_app, is_loopback


def run(db: str, *, host: str = "127.0.0.1", port: int = 4318, token: str | None = None) -> None:
    """Serve until interrupted. A non-loopback *host* needs a *token* (checked by the CLI)."""
    if not token and not is_loopback(host):
        raise ValueError(f"--host {host} is not loopback: set --token or WIDEEVENTS_SERVE_TOKEN")
    app = create_app(db, token=token, host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


__all__ = ["create_app", "is_loopback", "run"]
