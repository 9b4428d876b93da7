"""The wide event on the application thread: building it, nesting it, handing it on.

Everything here runs on the caller's thread, so it does the least it can: two clock reads,
a contextvar set/reset and an append to the pipeline's queue. Ids stay integers and the
record is built, sampled, redacted and serialized later, off the caller's path: on the
pipeline's worker, or by an HTTP integration once the response has gone out.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import random
import time
from collections.abc import AsyncGenerator, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

if TYPE_CHECKING:
    from typing_extensions import Self

F = TypeVar("F", bound=Callable[..., Any])


class Submitter(Protocol):
    """Where a finished event goes: the client's pipeline."""

    def submit(self, ev: Event) -> None: ...


_current: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "wideevents_current", default=None
)

# A private generator: seeded from the OS, re-seeded in a forked child so two workers never
# share an id stream, and untouched by an application that calls random.seed().
_rng = random.Random()
_rand = _rng.getrandbits
os.register_at_fork(after_in_child=_rng.seed)

_clock = time.perf_counter


def clock_offset() -> float:
    """``time.time() - time.perf_counter()``, read so that a preemption between the two
    reads cannot skew it: the wall clock is read between two monotonic reads, and the
    tightest of a few tries wins (its midpoint is the monotonic time of the wall read)."""
    perf, wall = time.perf_counter, time.time  # the real clocks, even under simulated_clock()
    best_width, best = float("inf"), 0.0
    for _ in range(5):
        a = perf()
        w = wall()
        b = perf()
        if b - a < best_width:
            best_width, best = b - a, w - (a + b) / 2
            if best_width < 2e-6:
                break
    return best


# Set by wideevents.otel.join_otel_traces(): a root event looks for an active OpenTelemetry
# span to join, and (spans_inside=True) every open event is the current span for OTel (its
# instrumentation's spans become the event's children; OTel's propagators send the event's
# traceparent). Off by default, so apps without OTel pay nothing for it.
_otel_parent: Callable[[], tuple[int, int] | None] | None = None
_otel_enter: Callable[[Event], object] | None = None
_otel_exit: Callable[[object], None] | None = None


class Event:
    """One wide event: a name, flat fields, ids, timing; a context manager and a decorator.

    Made by :func:`wideevents.event`. Fields added with :meth:`add`, ``ev[key] = value``,
    :meth:`incr` and :meth:`timer` all land in :attr:`fields`, which the pipeline reads
    once the event has ended.
    """

    __slots__ = (
        "_client",
        "_otel_token",
        "_rate",
        "_root",
        "_shared",
        "_t0",
        "_t1",
        "_token",
        "_trace_fields",
        "exc",
        "fields",
        "kept",
        "name",
        "parent_id",
        "span_id",
        "trace_id",
    )

    def __init__(
        self, name: str, fields: dict[str, Any], client: Submitter, keep: bool = False
    ) -> None:
        self.name = name
        self.fields = fields
        self._client = client
        self.kept = keep
        self._rate = 1
        self.exc: BaseException | None = None
        self.trace_id = 0
        self._t1 = 0.0
        self._shared: dict[str, Any] | None = None  # the trace's fields, on the root only
        # Set by __enter__ (kept out of here: this runs on every event):
        self.span_id: int
        self.parent_id: int
        self._t0: float
        self._root: Event | None  # the trace's root event; None on the root itself
        self._trace_fields: dict[str, Any] | None
        self._token: contextvars.Token[Event | None]
        self._otel_token: object  # set by __enter__ only with join_otel_traces(spans_inside=…)

    # -- the context manager -------------------------------------------------------------

    def __enter__(self) -> Self:
        parent = _current.get()
        if parent is None:
            if not self.trace_id:  # else continue_trace() set both ids
                ids = _otel_parent() if _otel_parent is not None else None
                if ids is None:
                    self.trace_id = _rand(128) or 1
                    self.parent_id = 0
                else:
                    self.trace_id, self.parent_id = ids
            # None stands for itself: a reference to itself would make every event cyclic
            # garbage, freed by a GC pass instead of when its last use ends.
            self._root = None
            self._trace_fields = None
        else:
            self.trace_id = parent.trace_id
            self.parent_id = parent.span_id
            self._root = root = parent._root or parent
            self._trace_fields = root._shared
        self.span_id = _rand(64) or 1
        if _otel_enter is not None:
            self._otel_token = _otel_enter(self)
        self._token = _current.set(self)
        self._t0 = _clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._t1 = _clock()
        try:
            _current.reset(self._token)
        except ValueError:
            # Exited in another context than it was entered in (a generator driven across
            # tasks): the event is still recorded, the context is left alone.
            self._otel_token = None
        if _otel_exit is not None:  # the bridge was turned on once: this event may hold a span
            token = getattr(self, "_otel_token", None)
            if token is not None:
                self._otel_token = None
                _otel_exit(token)
        if exc is not None:
            self.exc = exc
        self._client.submit(self)

    # -- adding fields -------------------------------------------------------------------

    def add(self, **fields: Any) -> None:
        """Add or overwrite fields."""
        self.fields.update(fields)

    def __setitem__(self, key: str, value: Any) -> None:
        self.fields[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def incr(self, key: str, n: int | float = 1) -> None:
        """Add *n* to a numeric field, starting from 0."""
        fields = self.fields
        fields[key] = fields.get(key, 0) + n

    def timer(self, key: str) -> _Timer:
        """A context manager that adds the milliseconds it encloses to *key*.

        ``with ev.timer("db.time_ms"): ...`` around each query gives the request's total DB time.
        """
        return _Timer(self.fields, key)

    def keep(self) -> None:
        """Keep this event whatever the sampler decides."""
        self.kept = True

    def continue_trace(self, traceparent: str | None) -> bool:
        """Before entering: join the caller's trace from a W3C ``traceparent`` header.

        An absent or malformed header is ignored (the event starts a trace of its own);
        returns whether the trace was continued. Ignored when the event has a parent.
        """
        ids = parse_traceparent(traceparent)
        if ids is None:
            return False
        self.trace_id, self.parent_id = ids
        return True

    @property
    def traceparent(self) -> str:
        """This event as a W3C ``traceparent`` header value, for outgoing requests."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-01"

    @property
    def duration_ms(self) -> float:
        """Milliseconds between enter and exit (so far, while the event is open)."""
        if not hasattr(self, "_t0"):
            return 0.0
        end = self._t1 if self._t1 else _clock()
        return (end - self._t0) * 1000.0

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"

    def __repr__(self) -> str:
        return f"<Event {self.name!r} fields={len(self.fields)}>"

    # -- the decorator -------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        """Use ``event(name, **fields)`` as a decorator: one event per call.

        Works for plain functions, ``async def``, generators and async generators; for the
        two generator kinds the event spans the whole iteration.
        """
        name, template, client, keep = self.name, self.fields, self._client, self.kept

        def new() -> Event:
            return Event(name, dict(template), client, keep)

        if inspect.isasyncgenfunction(func):
            return cast(F, _wrap_async_gen(func, new))
        if inspect.isgeneratorfunction(func):
            return cast(F, _wrap_gen(func, new))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with new():
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with new():
                return func(*args, **kwargs)

        return cast(F, run)


def _wrap_gen(func: Callable[..., Generator[Any, Any, Any]], new: Callable[[], Event]) -> Any:
    # The event is current only while the generator's own code runs, never in the caller
    # between two items; its duration covers the whole iteration.
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        ev = new()
        gen = func(*args, **kwargs)
        ctx = contextvars.copy_context()
        ctx.run(ev.__enter__)
        try:
            value = ctx.run(next, gen)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    ctx.run(gen.close)
                    raise
                except BaseException as exc:
                    value = ctx.run(gen.throw, exc)
                else:
                    value = ctx.run(gen.send, sent)
        except StopIteration as stop:
            ctx.run(ev.__exit__, None, None, None)
            return stop.value
        except GeneratorExit:
            ctx.run(ev.__exit__, None, None, None)
            raise
        except BaseException as exc:
            ctx.run(ev.__exit__, type(exc), exc, exc.__traceback__)
            raise

    return run


def _wrap_async_gen(func: Callable[..., AsyncGenerator[Any, Any]], new: Callable[[], Event]) -> Any:
    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        with new():
            agen = func(*args, **kwargs)
            try:
                async for item in agen:
                    yield item
            finally:
                await agen.aclose()

    return run


class _Timer:
    __slots__ = ("_fields", "_key", "_t0")

    def __init__(self, fields: dict[str, Any], key: str) -> None:
        self._fields = fields
        self._key = key
        self._t0 = 0.0

    def __enter__(self) -> _Timer:
        self._t0 = _clock()
        return self

    def __exit__(self, *exc_info: object) -> None:
        fields, key = self._fields, self._key
        fields[key] = fields.get(key, 0.0) + (_clock() - self._t0) * 1000.0


# -- context helpers ---------------------------------------------------------------------


def parse_traceparent(value: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) from ``00-<32 hex>-<16 hex>-<2 hex>``, or None."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace, span, flags = parts[:4]
    if (
        len(trace) != 32
        or len(span) != 16
        or len(flags) != 2
        or (version == "00" and len(parts) != 4)
    ):
        return None
    try:
        trace_id, span_id = int(trace, 16), int(span, 16)
        int(flags, 16)
    except ValueError:
        return None
    if not trace_id or not span_id or trace != trace.lower() or span != span.lower():
        return None
    return trace_id, span_id


def traceparent() -> str | None:
    """The current event as a ``traceparent`` header value, to send with outgoing calls."""
    ev = _current.get()
    return None if ev is None else ev.traceparent


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add ``traceparent`` for the current event to *headers* (returned for chaining)."""
    value = traceparent()
    if value is not None:
        headers["traceparent"] = value
    return headers


def current_event() -> Event | None:
    """The innermost open event of this thread or task, or None."""
    return _current.get()


def add(**fields: Any) -> None:
    """Add fields to the current event; a silent no-op when there is none."""
    ev = _current.get()
    if ev is not None:
        ev.fields.update(fields)


def add_to_trace(**fields: Any) -> None:
    """Add fields to the current event and to every event started later in its trace."""
    ev = _current.get()
    if ev is None:
        return
    ev.fields.update(fields)
    root = ev._root or ev
    # Copy on write: events that started earlier keep the dict they saw.
    root._shared = {**(root._shared or {}), **fields}


def with_current_event(func: F) -> F:
    """Wrap *func* so it runs inside the caller's current event, in any thread.

    ``executor.submit(with_current_event(work), item)``: events that ``work`` opens become
    children of the caller's event, and ``add()`` inside it reaches that event.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(func, *args, **kwargs)

    return cast(F, run)
