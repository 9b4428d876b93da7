"""Flask: one wide event per request, named after the route template.

    from wideevents.integrations.flask import WideEvents
    WideEvents(app)                          # or: ext = WideEvents(); ext.init_app(app)

Inside a view, ``wideevents.add(cart_items=3)`` adds to the request's event. A view that
raises is recorded (``error.type``, ``error.message``) with status 500, and Flask handles the
exception as it always does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._exceptions import MissingExtraError

try:
    import flask
    from flask import got_request_exception
except ImportError as exc:  # pragma: no cover - exercised without flask installed
    raise MissingExtraError("flask", "flask") from exc

from .._event import add
from .wsgi import WideEventsMiddleware, record_exception

__all__ = ["WideEvents"]


class WideEvents:
    """The Flask extension; options as for ``wsgi.WideEventsMiddleware``."""

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        exclude_paths: Iterable[str] = (),
        request_headers: Iterable[str] = (),
        response_headers: Iterable[str] = (),
    ) -> None:
        self.options: dict[str, Any] = {
            "exclude_paths": exclude_paths,
            "request_headers": request_headers,
            "response_headers": response_headers,
        }
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        # The middleware reads the route template from Werkzeug's request: no per-request hook.
        app.wsgi_app = WideEventsMiddleware(app.wsgi_app, **self.options)  # type: ignore[method-assign]
        got_request_exception.connect(_record_exception, app, weak=False)
        app.extensions["wideevents"] = self


def _record_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    # The route too: an exception Flask propagates ends the request before a response starts.
    rule = flask.request.url_rule
    if rule is not None:
        add(**{"http.route": rule.rule})
    record_exception(exception)
