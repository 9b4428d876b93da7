"""Sinks named by text, as in ``WIDEEVENTS_SINKS=jsonl:-,duckdb:/var/lib/app/events.duckdb``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .._exceptions import ConfigError
from ._base import Sink


def _jsonl(arg: str) -> Sink:
    from ._jsonl import JsonLinesSink

    return JsonLinesSink(arg or "-")


def _memory(arg: str) -> Sink:
    from ._memory import MemorySink

    return MemorySink()


def _lazy(module: str, factory: str) -> Callable[[str], Sink]:
    # Sinks with heavy dependencies (duckdb, the OTel SDK) are imported only when named.
    def make(arg: str) -> Sink:
        try:
            mod = importlib.import_module(module, __package__)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"sink needs a module that is not available: {exc}") from exc
        sink: Sink = getattr(mod, factory)(arg)
        return sink

    return make


_FACTORIES: dict[str, Callable[[str], Sink]] = {
    "jsonl": _jsonl,
    "memory": _memory,
    "duckdb": _lazy(".duckdb", "from_spec"),
    "otlp": _lazy(".otlp", "from_spec"),
}


def from_spec(spec: str) -> Sink:
    """One sink from ``kind`` or ``kind:argument``."""
    kind, _, arg = spec.strip().partition(":")
    factory = _FACTORIES.get(kind.strip().lower())
    if factory is None:
        raise ConfigError(
            f"unknown sink {spec!r} in WIDEEVENTS_SINKS: use {', '.join(sorted(_FACTORIES))}"
            " (for example 'jsonl:-' or 'duckdb:./wideevents.duckdb')"
        )
    return factory(arg.strip())


def from_specs(specs: str) -> list[Sink]:
    """Sinks from a comma list such as ``"jsonl:-,memory"``."""
    parts = [p for p in specs.split(",") if p.strip()]
    if not parts:
        raise ConfigError("WIDEEVENTS_SINKS is set but names no sink")
    return [from_spec(p) for p in parts]
