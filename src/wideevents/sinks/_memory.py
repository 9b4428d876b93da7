from __future__ import annotations

import threading
from typing import Any

from ._base import Batch, Sink


class MemorySink(Sink):
    """Keeps every record in a list, for tests (``wideevents.testing`` builds on it)."""

    inline_safe = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def export(self, batch: Batch) -> None:
        with self._lock:
            self.events.extend(batch.records)

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
