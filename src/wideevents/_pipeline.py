"""From finished events to sinks: the bounded queue, the worker thread, and the encoding.

The application thread only appends a finished :class:`Event` to a deque (or counts a drop
when the deque is full). A daemon worker wakes every ``poll`` seconds, or when the queue
is half full, takes what is queued and, per batch: builds each record, samples, redacts,
serializes with orjson and hands one :class:`Batch` to every sink. ``flush()`` does the same
work on the caller's thread under the same lock, so it returns once everything submitted
before it has reached the sinks. After ``fork()`` the child starts with an empty queue and
a new worker on its first event.

The HTTP integrations call :meth:`Pipeline.after_response` once a response has gone out.
When :data:`_INLINE_BATCH` events wait, every sink is ``inline_safe`` and ready, and no
redaction hook or sampling predicate of the app's is set, that thread encodes and exports up
to :data:`_INLINE_MAX` of them itself, between two requests; the worker then wakes every
0.1 s for what is left, and seals and flushes on its schedule. Under a server that runs one
request at a time per process (gunicorn's sync workers) this costs less than waking a second
thread 200 times a second and trading the GIL with it: in ``bench_http`` it halved the
throughput the events cost.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from . import _internal
from ._config import BUILTIN_RESOURCE
from ._event import clock_offset
from ._redact import Redactor
from .sampling import decide
from .sinks import Batch

if TYPE_CHECKING:
    from ._config import Config
    from ._event import Event

_BATCH = 4096
# While events flow the worker drains every 5 ms: each drain then holds the GIL for a few
# events' encoding only (a request that waits behind one waits tens of microseconds, not the
# ~0.5 ms a 20 ms poll cost gunicorn's p99). Idle, it backs off to 0.1 s.
_POLL = 0.005
_IDLE_POLL = 0.1
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NAIVE_UTC
# An app thread that has just sent a response encodes the queue itself once this many wait,
# at most _INLINE_MAX of them (so one response's thread never pays for a backlog).
_INLINE_BATCH = 16
_INLINE_MAX = 64

_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _default(value: Any) -> Any:
    # orjson calls this for what it cannot encode itself.
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A copy of *value* that orjson accepts: big ints and odd keys as text, cycles cut."""
    if depth > 32:
        return "<too deep>"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _Clock:
    """Wall-clock time for the monotonic clock reads taken on the app thread.

    ``offset`` turns a ``perf_counter()`` reading into seconds since the epoch; it is re-read
    once per batch. ``prefix`` is the ISO text of second ``sec``, kept because most events
    of a batch fall in the same second.
    """

    __slots__ = ("offset", "prefix", "sec")

    def __init__(self) -> None:
        self.offset = 0.0
        self.sec = -1
        self.prefix = ""
        self.sync()

    def sync(self) -> None:
        self.offset = clock_offset()

    def set_second(self, sec: int) -> None:
        self.sec = sec
        self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


class Pipeline:
    """The queue and the worker of one client."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sinks = list(config.sinks)
        self.rules = config.rules
        self.redactor = Redactor(config.redaction) if config.redaction is not None else None
        self._set_resource(dict(config.resource))
        self.flush_interval = config.flush_interval
        self.cap = config.queue_size
        self._wake_at = max(1, self.cap // 2)
        self._poll = min(_POLL, self.flush_interval)
        self._idle_poll = min(_IDLE_POLL, self.flush_interval)
        self._names: dict[str, str] = {}
        # An app thread may drain the queue (after_response) only into sinks that never
        # block, and runs no redaction hook or sampling predicate of the app's (those may do
        # anything: a slow one would hold up the next request).
        self.inline = (
            bool(self.sinks)
            and all(s.inline_safe for s in self.sinks)
            and (self.redactor is None or not self.redactor.has_hooks)
            and not any(r.app_code for r in self.rules)
        )
        self._clock = _Clock()
        self._reset_runtime()
        self.submitted = 0  # taken from the queue by the worker
        self.sampled_out = 0
        self.exported = 0
        _pipelines.add(self)
        self._atexit_registered = False

    def _set_resource(self, raw: dict[str, Any]) -> None:
        """Keep *raw* and its redacted copy: static for the pipeline's life (until a fork
        changes ``process.pid``), so redacted here once rather than in every event."""
        self._raw_resource = raw
        resource = dict(raw)
        redacted: dict[str, list[str]] = {}
        if self.redactor is not None:
            redacted = self.redactor.redact_resource(resource, BUILTIN_RESOURCE)
        self.resource = resource
        self._resource_keys = frozenset(resource)
        self._resource_redacted = redacted  # top-level key: the paths redaction changed
        self._resource_paths = tuple(p for paths in redacted.values() for p in paths)

    def _reset_runtime(self) -> None:
        self.queue: deque[Event] = deque()
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = False
        self._work = threading.Lock()
        self._drop_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._inline_at = -1e9  # when an app thread last drained the queue

    # -- the application thread --------------------------------------------------------

    def submit(self, ev: Event) -> None:
        q = self.queue
        n = len(q)
        if n < self.cap:
            q.append(ev)
            if self._thread is None:
                self._start()
            elif n == self._wake_at:
                self._wake.set()
        else:
            with self._drop_lock:
                self.dropped += 1

    def after_response(self) -> None:
        """From an app thread whose response has gone out: encode and export one batch of
        what is queued, here, once :data:`_INLINE_BATCH` events wait, every sink is
        ``inline_safe`` and ready (``Sink.inline_ready``) and no redaction hook or sampling
        predicate of the app's is set.
        Never waits: when the worker or a flush holds the pipeline, this returns at once.
        """
        q = self.queue
        if not self.inline or len(q) < _INLINE_BATCH:
            return
        if not self._work.acquire(blocking=False):
            return
        try:
            if self._stop or not all(s.inline_ready() for s in self.sinks):
                return  # shut down, or a sink wants its worker first (no segment open)
            self._inline_at = time.monotonic()
            self._drain(_INLINE_MAX)  # other threads keep appending meanwhile
        except Exception as exc:  # pragma: no cover - _encode and _export guard their parts
            _internal.report("worker", exc, reraise=False)
        finally:
            self._work.release()

    def export_now(self, events: list[Event]) -> int:
        """Sample, redact and export *events* on the caller's thread, past the queue.

        For a receiver (``wideevents serve``) that must answer only once what it accepted is
        with the sinks, and must never drop it for a full queue. Returns how many were
        exported; the worker still flushes the sinks on its schedule.
        """
        if self._thread is None:
            self._start()
        with self._work:
            self.submitted += len(events)
            try:
                batch = self._encode(events)
            except BaseException:  # a signal's exception: the caller still has the events
                self.submitted -= len(events)
                raise
            if batch is None:
                return 0
            self._export(batch)
            return len(batch.records)

    def _start(self) -> None:
        with self._drop_lock:
            if self._thread is not None or self._stop:
                return
            t = threading.Thread(target=self._run, name=_internal.WORKER_THREAD, daemon=True)
            self._thread = t
        if not self._atexit_registered:
            self._atexit_registered = True
            atexit.register(self._at_exit)
        t.start()

    # -- the worker --------------------------------------------------------------------

    def _run(self) -> None:
        poll = self._poll
        while not self._stop:
            now = time.monotonic()
            if now - self._inline_at < self._idle_poll:
                poll = self._idle_poll  # the app's threads drain the queue themselves
            # Idle back-off never stretches the flush interval.
            due = self._last_flush + self.flush_interval - now
            self._wake.wait(min(poll, max(due, 0.001)))
            self._wake.clear()
            if self._work.acquire(timeout=self._poll):
                try:
                    poll = self._poll if self._drain() else min(poll * 2, self._idle_poll)
                    if time.monotonic() - self._last_flush >= self.flush_interval:
                        self._flush_sinks(0.0)  # push what is ready; never wait here
                except Exception as exc:  # pragma: no cover - _drain guards its parts
                    _internal.report("worker", exc, reraise=False)
                finally:
                    self._work.release()

    def _drain(self, limit: int | None = None) -> int:
        """Encode and export what is queued (at most *limit* events); returns how many
        events were taken."""
        q = self.queue
        taken = 0
        while q and (limit is None or taken < limit):
            n = min(len(q), _BATCH if limit is None else min(_BATCH, limit - taken))
            pop = q.popleft
            events = [pop() for _ in range(n)]
            self.submitted += n
            try:
                batch = self._encode(events)
            except BaseException:
                # A signal's exception (gunicorn's SystemExit on a request thread): the
                # events go back to the queue, for the exit's flush. (Not from the export
                # below: requeued, part of the batch could be written twice. The DuckDB sink
                # keeps what reached its segment whole and counts the rest as lost.)
                self.submitted -= n
                q.extendleft(reversed(events))
                raise
            taken += n
            if batch is not None:
                self._export(batch)
        return taken

    def _encode(self, events: list[Event]) -> Batch | None:
        """Sample, redact and serialize a batch (see :meth:`_serialize`)."""
        rules = self.rules
        kept: list[Event] = []
        user: list[dict[str, Any]] = []
        dropped = 0
        for ev in events:
            # A copy (one C-level call): a thread that still adds to an ended event must not
            # change the record between its redaction and its serialization.
            fields = {**ev._trace_fields, **ev.fields} if ev._trace_fields else ev.fields.copy()
            if rules and not ev.kept:
                error = ev.exc is not None or fields.get("error") is True
                try:
                    rate = decide(rules, ev.trace_id, (ev._t1 - ev._t0) * 1000.0, error, fields)
                except Exception as exc:
                    _internal.report("sampler", exc, reraise=False)
                    rate = 1
                if not rate:
                    dropped += 1
                    continue
                ev._rate = rate
            kept.append(ev)
            user.append(fields)
        batch = self._serialize(kept, user) if kept else None
        # Counted only once the batch is through: a signal's exception in it puts the whole
        # batch back on the queue, to be sampled again.
        self.sampled_out += dropped
        return batch

    def _serialize(self, kept: list[Event], user: list[dict[str, Any]]) -> Batch | None:
        """Redact the sampled events' fields (*user*, in place) and serialize them; the record
        is the event's own fields dict. None when redaction fails (the batch fails closed).

        Core and resource fields are written into the fields (after redaction, so they are
        never scanned): once an event has ended its fields belong to the pipeline.
        """
        redactor = self.redactor
        changed: list[list[str] | None] | None = None
        if redactor is not None:
            try:
                changed = redactor.redact_batch(user)
            except Exception as exc:
                # Fail closed: a batch that could not be redacted does not leave the process.
                _internal.report("redaction", exc, reraise=False)
                return None

        clock = self._clock
        clock.sync()
        offset = clock.offset
        resource = self.resource
        resource_keys = self._resource_keys
        names = self._names
        dumps = orjson.dumps
        lines: list[bytes] = []
        records: list[dict[str, Any]] = []
        for n, ev in enumerate(kept):
            fields = user[n]
            try:
                if resource_keys.isdisjoint(fields):
                    fields.update(resource)
                    from_resource = self._resource_paths
                else:  # the app's own value for a resource field wins
                    own = resource_keys.intersection(fields)
                    fields.update((k, v) for k, v in resource.items() if k not in own)
                    from_resource = tuple(
                        p
                        for key, paths in self._resource_redacted.items()
                        if key not in own
                        for p in paths
                    )
                t0 = ev._t0
                ts = t0 + offset
                sec = int(ts)
                if sec != clock.sec:
                    clock.set_second(sec)
                # (str() of 1000000 + µs and no format spec: a third of the cost.)
                fields["timestamp"] = f"{clock.prefix}.{str(1000000 + int((ts - sec) * 1e6))[1:]}Z"
                # Whole microseconds are what a perf_counter difference means here; rounding
                # also lets the store compress durations to a third of the bytes. (An int
                # over 1000.0 reads back as its three decimals, at half the cost of round().)
                fields["duration_ms"] = int((ev._t1 - t0) * 1e6 + 0.5) / 1000.0
                name = ev.name
                fields["name"] = names.get(name) or self._name(name)
                # Ids are below 2**128 and 2**64 (generated, parsed from 32 and 16 hex
                # digits, or an OTel span's); bytes.hex() is half the cost of a format spec.
                # (One out of range fails this event's encoding, counted.)
                fields["trace_id"] = ev.trace_id.to_bytes(16, "big").hex()
                fields["span_id"] = ev.span_id.to_bytes(8, "big").hex()
                parent = ev.parent_id
                fields["parent_id"] = parent.to_bytes(8, "big").hex() if parent else None
                fields["sample_rate"] = ev._rate
                paths = changed[n] if changed is not None else None
                raised = ev.exc
                if raised is None:
                    fields["error"] = fields.get("error") is True
                else:
                    paths = self._add_error(fields, raised, paths)
                if fields["name"] != name:
                    paths = [*(paths or ()), "name"]
                if from_resource:  # once each (an app's value dropped, the resource's kept)
                    paths = list(dict.fromkeys([*(paths or ()), *from_resource]))
                if paths:
                    fields["meta.redacted"] = paths
                try:
                    line = dumps(fields, default=_default, option=_OPTS)
                except TypeError:  # an int wider than 64 bits, a cycle, a key orjson refuses
                    fields = _jsonable(fields)
                    line = dumps(fields, default=_default, option=_OPTS)
            except Exception as exc:
                _internal.report("encode", exc, reraise=False)
                continue
            records.append(fields)
            lines.append(line)
        return Batch(records, lines)

    def _add_error(
        self, fields: dict[str, Any], raised: BaseException, paths: list[str] | None
    ) -> list[str] | None:
        fields["error"] = True
        fields["error.type"] = _error_type(raised)
        message, scrubbed = self._message(raised)
        if message:
            fields["error.message"] = message
        else:
            fields.pop("error.message", None)
        return [*(paths or ()), "error.message"] if scrubbed else paths

    def _name(self, name: str) -> str:
        out = self._names.get(name)
        if out is None:
            out = name if isinstance(name, str) else str(name)
            if self.redactor is not None:
                out = self.redactor.scrub_text(out)
            if len(self._names) >= 4096:
                self._names.clear()
            self._names[name] = out
        return out

    def _message(self, exc: BaseException) -> tuple[str, bool]:
        """The exception's text, redacted, and whether redaction changed it."""
        try:
            text = str(exc)
        except Exception:
            return f"<unprintable {type(exc).__name__}>", False
        if self.redactor is None:
            return text, False
        out = self.redactor.scrub_text(text, message=True)
        return out, out != text

    def _export(self, batch: Batch) -> None:
        if not batch.records:
            return
        self.exported += len(batch.records)
        for sink in self.sinks:
            try:
                sink.export(batch)
            except Exception as exc:
                _internal.report("sink_errors", exc, reraise=False)

    def _flush_sinks(self, timeout: float | None) -> bool:
        self._last_flush = time.monotonic()
        ok = True
        for sink in self.sinks:
            try:
                ok = bool(sink.flush(timeout)) and ok
            except Exception as exc:
                _internal.report("sink_errors", exc, reraise=False)
                ok = False
        return ok

    # -- control, from any thread ------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Encode and export everything queued, then flush the sinks. False on timeout."""
        if not self._work.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            self._drain()
            ok = self._flush_sinks(timeout)
        finally:
            self._work.release()
        _internal.raise_pending()
        return ok

    def shutdown(self, timeout: float | None = 5.0) -> None:
        """Flush, stop the worker and shut the sinks down; later events are not kept."""
        self._stop = True  # before the flush takes the pipeline: no app thread drains after it
        if self._atexit_registered:  # or a replaced pipeline would live until exit
            atexit.unregister(self._at_exit)
            self._atexit_registered = False
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        try:
            self.flush(timeout)
        finally:
            for sink in self.sinks:
                try:
                    sink.shutdown(timeout)
                except Exception as exc:
                    _internal.report("sink_errors", exc, reraise=False)
            self.sinks = []

    def _at_exit(self) -> None:
        if not self._stop:
            try:
                self.shutdown(timeout=5.0)
            except Exception as exc:
                _internal.report("shutdown", exc, reraise=False)

    def stats(self) -> dict[str, int]:
        queued = len(self.queue)
        return {
            "emitted": self.submitted + queued + self.dropped,
            "queued": queued,
            "dropped": self.dropped,
            "sampled_out": self.sampled_out,
            "exported": self.exported,
        }

    def _after_fork_in_child(self) -> None:
        # Events queued in the parent are the parent's to export; locks held by the
        # parent's worker at fork time would never be released in the child.
        self._reset_runtime()
        self._set_resource({**self._raw_resource, "process.pid": os.getpid()})
        for sink in self.sinks:
            try:
                sink.after_fork()
            except Exception as exc:
                _internal.report("sink_errors", exc, reraise=False)


def _shutdown_all(*_: object) -> None:
    for p in list(_pipelines):
        p._at_exit()


class _ForkToken:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_FORK_TOKEN = _ForkToken()


def _after_fork() -> None:
    for p in list(_pipelines):
        p._after_fork_in_child()
    # A multiprocessing child leaves through os._exit, which skips atexit. Its bootstrap clears
    # the finalizers it inherited and then runs the after-fork hooks: register one there that
    # installs the exit flush as a finalizer of the child's own.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.register_after_fork(
            _FORK_TOKEN, lambda _: mp_util.Finalize(None, _shutdown_all, exitpriority=100)
        )


os.register_at_fork(after_in_child=_after_fork)
