"""The guard that keeps telemetry from hurting the host application.

Every failure inside the SDK, a redaction hook or a sink goes through :func:`report`:
it is counted under a kind in :data:`STATS` and logged once per (kind, exception type).
Under the project's own tests (``WIDEEVENTS_RAISE_INTERNAL=1``) the failure is kept in
:data:`PENDING` and re-raised by the next ``flush()`` or by the call that hit it,
so bugs are not hidden.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

logger = logging.getLogger("wideevents")

STATS: Counter[str] = Counter()
PENDING: list[BaseException] = []
_logged: set[tuple[str, type[BaseException]]] = set()
_lock = threading.Lock()

WORKER_THREAD = "wideevents-worker"  # the pipeline's worker thread's name


def on_worker() -> bool:
    """Whether this is the pipeline's worker (a sink starts files and processes only there)."""
    return threading.current_thread().name == WORKER_THREAD


def raise_internal() -> bool:
    """True when internal errors must surface (the project's own test suite)."""
    return os.environ.get("WIDEEVENTS_RAISE_INTERNAL", "") == "1"


def report(kind: str, exc: BaseException, *, reraise: bool = True) -> None:
    """Count *exc* under *kind* and log it the first time this kind of failure happens.

    With ``reraise`` under the project's tests the exception is raised right here; from a
    background thread pass ``reraise=False`` and it is raised by the next ``flush()``.
    """
    with _lock:
        STATS[kind] += 1
        first = (kind, type(exc)) not in _logged
        _logged.add((kind, type(exc)))
    if raise_internal():
        if reraise:
            raise exc
        PENDING.append(exc)
        return
    if first:
        logger.warning(
            "wideevents: %s failed (%s: %s); counted in wideevents.stats()[%r], "
            "further failures of this kind are not logged",
            kind,
            type(exc).__name__,
            exc,
            kind,
            exc_info=exc,
        )


def raise_pending() -> None:
    """Re-raise the first failure a background thread recorded under the project's tests."""
    if PENDING:
        exc = PENDING[0]
        PENDING.clear()
        raise exc


def reset() -> None:
    """Forget counts and logged kinds (tests)."""
    with _lock:
        STATS.clear()
        PENDING.clear()
        _logged.clear()
