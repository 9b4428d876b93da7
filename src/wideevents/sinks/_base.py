from __future__ import annotations

from typing import Any


class Batch:
    """Redacted, sampled events, ready to leave the process.

    ``records`` are dicts (core, resource and user fields, flat, JSON-ready). ``lines`` are the
    same events as orjson JSON lines, each ending in ``\\n``; they are made once per batch and
    shared by every sink that writes text.
    """

    __slots__ = ("lines", "records")

    def __init__(self, records: list[dict[str, Any]], lines: list[bytes]) -> None:
        self.records = records
        self.lines = lines

    def __len__(self) -> int:
        return len(self.records)


class Sink:
    """The interface of a destination for events.

    * ``export(batch)`` takes a batch; called on the worker thread (see below), one call at
      a time.
    * ``flush(timeout)`` pushes what is buffered to its destination; True when done in time.
    * ``shutdown(timeout)`` flushes and releases resources; later exports are ignored.

    Whatever a sink raises is caught, counted under ``sink_errors`` in ``wideevents.stats()``
    and logged once. Besides the worker, the thread of an explicit ``wideevents.flush()`` or
    ``shutdown()`` (and at exit) runs these, under the same lock. And when a sink sets
    ``inline_safe``, an HTTP integration's thread may call ``inline_ready()`` and then
    ``export`` right after a response went out (still one call at a time). Set it only for
    an export that never blocks: a buffered append to a local file, a bounded hand-off.
    """

    inline_safe: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass with an export of its own says for itself whether it may block.
        if "export" in cls.__dict__ and "inline_safe" not in cls.__dict__:
            cls.inline_safe = False

    def inline_ready(self) -> bool:
        """Whether an app thread may export now (an ``inline_safe`` sink may want its
        worker first, as the DuckDB sink does when no spool segment is open)."""
        return True

    def export(self, batch: Batch) -> None:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        self.flush(timeout)

    def after_fork(self) -> None:
        """Called in a forked child before it exports: reopen what must not be shared."""
