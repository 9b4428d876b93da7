"""The client: configuration plus a pipeline; module functions use a default one."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from . import _internal
from ._config import build_config
from ._event import Event
from ._pipeline import Pipeline
from ._redact import Redaction
from .sampling import Rule
from .sinks import Sink


class WideEvents:
    """A configured SDK instance. ``wideevents.event`` and friends use :data:`DEFAULT`.

    Build your own for tests or for a library that must not share the app's settings::

        client = WideEvents()
        client.configure(sinks=[MemorySink()])
        with client.event("job") as ev: ...
    """

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()

    def configure(
        self,
        service: str | None = None,
        *,
        version: str | None = None,
        environment: str | None = None,
        sinks: Sequence[Sink] | str | None = None,
        redact: bool | Redaction = True,
        sample: int | Sequence[Rule] | None = None,
        fields: Mapping[str, Any] | None = None,
        queue_size: int | None = None,
        flush_interval: float | None = None,
    ) -> None:
        """Set up the service's resource fields, sinks, redaction and sampling.

        Optional: without it, settings come from the environment (``WIDEEVENTS_SINKS``,
        ``WIDEEVENTS_SERVICE`` or ``OTEL_SERVICE_NAME`` …). Calling it again flushes and
        replaces the previous setup; events still open then go to the new one.
        """
        config = build_config(
            service,
            version=version,
            environment=environment,
            sinks=sinks,
            redact=redact,
            sample=sample,
            fields=fields,
            queue_size=queue_size,
            flush_interval=flush_interval,
        )
        new = Pipeline(config)
        with self._lock:
            old, self._pipeline = self._pipeline, new
        if old is not None:
            old.submit = new.submit  # type: ignore[method-assign]
            old.shutdown()

    def _ensure(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = Pipeline(build_config())
            return self._pipeline

    def _submit(self, ev: Event) -> None:
        (self._pipeline or self._ensure()).submit(ev)

    def event(self, name: str, /, *, _keep: bool = False, **fields: Any) -> Event:
        """A new event; use it with ``with`` or as a decorator."""
        p = self._pipeline or self._ensure()
        return Event(name, fields, p, _keep)

    def flush(self, timeout: float | None = None) -> bool:
        """Hand every finished event to the sinks and flush them. False on timeout."""
        p = self._pipeline
        if p is None:
            _internal.raise_pending()
            return True
        return p.flush(timeout)

    def shutdown(self, timeout: float | None = 5.0) -> None:
        """Flush and close the sinks. Also runs at interpreter exit."""
        with self._lock:
            p, self._pipeline = self._pipeline, None
        if p is not None:
            p.shutdown(timeout)

    def stats(self) -> dict[str, int]:
        """Counters: emitted, queued, dropped, sampled_out, exported and failures by kind."""
        p = self._pipeline
        out = (
            p.stats()
            if p is not None
            else {
                "emitted": 0,
                "queued": 0,
                "dropped": 0,
                "sampled_out": 0,
                "exported": 0,
            }
        )
        out["sink_errors"] = _internal.STATS.get("sink_errors", 0)
        for kind, n in _internal.STATS.items():
            out.setdefault(f"{kind}_errors" if not kind.endswith("errors") else kind, n)
        return out


DEFAULT = WideEvents()
