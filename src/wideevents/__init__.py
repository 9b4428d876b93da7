"""wideevents: one structured, redacted record per unit of work.

    import wideevents

    with wideevents.event("checkout", user_id=user.id) as ev:
        ev["cart.items"] = len(cart)
        ...

See https://github.com/wideevents/wideevents for the guide.
"""

from typing import Any as _Any

from ._client import DEFAULT as _DEFAULT
from ._client import WideEvents
from ._event import (
    Event,
    add,
    add_to_trace,
    current_event,
    inject,
    traceparent,
    with_current_event,
)
from ._exceptions import ConfigError, MissingExtraError, WideEventsError
from ._redact import DROP, Redaction
from ._version import __version__

__all__ = [
    "DROP",
    "ConfigError",
    "Event",
    "MissingExtraError",
    "Redaction",
    "WideEvents",
    "WideEventsError",
    "__version__",
    "add",
    "add_to_trace",
    "configure",
    "current_event",
    "event",
    "flush",
    "inject",
    "shutdown",
    "stats",
    "traceparent",
    "with_current_event",
]

configure = _DEFAULT.configure
flush = _DEFAULT.flush
shutdown = _DEFAULT.shutdown
stats = _DEFAULT.stats


def event(name: str, /, *, _keep: bool = False, **fields: _Any) -> Event:
    """Start a wide event: ``with event("checkout", user_id=42) as ev:`` or ``@event("job")``.

    Nested events become children in the same trace. On exit the event records its duration
    and any escaping exception (which is re-raised) and is handed to the pipeline.
    ``_keep=True`` keeps it whatever the sampler decides.
    """
    p = _DEFAULT._pipeline or _DEFAULT._ensure()
    return Event(name, fields, p, _keep)
