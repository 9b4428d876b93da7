"""Tail sampling: which finished events to keep, decided once their duration and error are known.

``configure(sample=[...])`` takes rules, tried in order; the first that matches gives the rate
*n* (keep 1 in *n*). An event no rule matches is kept (rate 1). The keep decision for rate *n*
is a function of the trace id alone, the same one OpenTelemetry's ``TraceIdRatioBased``
sampler uses, so a trace is kept or dropped whole, across services::

    from wideevents import sampling
    configure(sample=[
        sampling.errors(),                  # keep every error
        sampling.slower_than(1000),         # keep everything slower than 1 s
        sampling.where("customer.tier", "enterprise"),
        sampling.rate(20),                  # 1 in 20 of the rest
    ])

Each kept event records its ``sample_rate``; queries weight by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._exceptions import ConfigError

__all__ = ["Rule", "errors", "keep_rate", "rate", "slower_than", "where"]

_ID_LIMIT = (1 << 64) - 1

Predicate = Callable[[float, bool, Mapping[str, Any]], bool]


class Rule:
    """Events for which ``predicate(duration_ms, error, fields)`` holds are kept 1 in ``rate``.

    ``app_code``: the predicate runs a function of the app's (``where()`` with a callable, or
    a rule made here from any predicate), which may do anything: then the pipeline samples
    only on its worker thread, never on a request's thread after its response.
    """

    __slots__ = ("app_code", "description", "predicate", "rate")

    def __init__(
        self, predicate: Predicate, rate: int, description: str, *, app_code: bool = True
    ) -> None:
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            raise ConfigError(f"a sample rate is an int >= 1 (keep 1 in n), got {rate!r}")
        self.predicate = predicate
        self.rate = rate
        self.description = description
        self.app_code = app_code

    def __repr__(self) -> str:
        return f"<Rule {self.description} rate={self.rate}>"


def errors(rate: int = 1) -> Rule:
    """Events with ``error`` set (an exception escaped, or the app set ``error=True``)."""
    return Rule(lambda d, e, f: e, rate, "errors", app_code=False)


def slower_than(ms: float, rate: int = 1) -> Rule:
    """Events whose ``duration_ms`` is at least *ms*."""
    return Rule(lambda d, e, f: d >= ms, rate, f"duration_ms >= {ms}", app_code=False)


def where(field: str, value: Any, rate: int = 1) -> Rule:
    """Events whose *field* equals *value*, or satisfies it when *value* is a callable."""
    if callable(value):
        test = value
        return Rule(lambda d, e, f: field in f and bool(test(f[field])), rate, f"{field} matches")
    return Rule(lambda d, e, f: f.get(field) == value, rate, f"{field} = {value!r}", app_code=False)


def rate(n: int) -> Rule:
    """Every event: keep 1 in *n*. Put it last, as the default."""
    return Rule(lambda d, e, f: True, n, f"1 in {n}", app_code=False)


def keep_rate(trace_id: int, n: int) -> bool:
    """True when the trace with this id is kept at rate *n* (deterministic, OTel-compatible)."""
    if n <= 1:
        return True
    return (trace_id & _ID_LIMIT) < (_ID_LIMIT + 1) // n


def compile_rules(sample: int | Sequence[Rule] | None) -> tuple[Rule, ...]:
    """``configure(sample=...)``: a rule list, or an int n meaning ``[rate(n)]``."""
    if sample is None:
        return ()
    if isinstance(sample, int) and not isinstance(sample, bool):
        return (rate(sample),)
    if isinstance(sample, bool):
        raise ConfigError("sample= takes rules from wideevents.sampling or an int, got a bool")
    rules = tuple(sample)
    for r in rules:
        if not isinstance(r, Rule):
            raise ConfigError(f"sample= takes rules from wideevents.sampling or an int, got {r!r}")
    return rules


def decide(
    rules: tuple[Rule, ...],
    trace_id: int,
    duration_ms: float,
    error: bool,
    fields: Mapping[str, Any],
) -> int:
    """The event's sample rate if kept, 0 if dropped."""
    for rule in rules:
        if rule.predicate(duration_ms, error, fields):
            n = rule.rate
            return n if keep_rate(trace_id, n) else 0
    return 1
