"""Configuration: from ``configure()`` arguments, else from the environment, else defaults."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._exceptions import ConfigError
from ._redact import Redaction
from .sampling import Rule, compile_rules
from .sinks import Sink, from_specs

# The resource fields every event carries; allow-only never drops these.
BUILTIN_RESOURCE = frozenset(
    {"service.name", "service.version", "deployment.environment.name", "host.name", "process.pid"}
)

DEFAULT_SINKS = "duckdb:"
"""Unconfigured, events go to the embedded store at ``WIDEEVENTS_DB`` or ./wideevents.duckdb."""


@dataclass
class Config:
    """Everything a pipeline needs; built by :func:`build_config`."""

    sinks: list[Sink]
    redaction: Redaction | None
    rules: tuple[Rule, ...]
    resource: dict[str, Any]
    queue_size: int = 50_000
    flush_interval: float = 1.0


def _otel_resource_attributes() -> dict[str, str]:
    # OTEL_RESOURCE_ATTRIBUTES="service.version=1.2,deployment.environment.name=prod"
    out: dict[str, str] = {}
    for part in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def _positive(name: str, value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive {kind.__name__}, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    return number


def build_config(
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
) -> Config:
    env = os.environ
    otel = _otel_resource_attributes()
    resource: dict[str, Any] = {
        "service.name": service
        or env.get("WIDEEVENTS_SERVICE")
        or env.get("OTEL_SERVICE_NAME")
        or otel.get("service.name")
        or "unknown_service",
    }
    version = version or env.get("WIDEEVENTS_SERVICE_VERSION") or otel.get("service.version")
    if version:
        resource["service.version"] = version
    environment = (
        environment
        or env.get("WIDEEVENTS_ENVIRONMENT")
        or otel.get("deployment.environment.name")
        or otel.get("deployment.environment")
    )
    if environment:
        resource["deployment.environment.name"] = environment
    resource["host.name"] = socket.gethostname()
    resource["process.pid"] = os.getpid()
    if fields:
        resource.update(fields)

    if sinks is None:
        sink_list = from_specs(env.get("WIDEEVENTS_SINKS") or DEFAULT_SINKS)
    elif isinstance(sinks, str):
        sink_list = from_specs(sinks)
    else:
        sink_list = list(sinks)
        for s in sink_list:
            if not isinstance(s, Sink):
                raise ConfigError(f"sinks= takes Sink objects or a spec string, got {s!r}")

    if redact is True:
        secret = env.get("WIDEEVENTS_HASH_SECRET")
        redaction: Redaction | None = Redaction(hash_secret=secret)
    elif redact is False:
        redaction = None
    elif isinstance(redact, Redaction):
        redaction = redact
        if redaction.hash_keys and not redaction.hash_secret:
            raise ConfigError("hash_keys needs hash_secret")
    else:
        raise ConfigError(f"redact= takes True, False or a Redaction, got {redact!r}")

    return Config(
        sinks=sink_list,
        redaction=redaction,
        rules=compile_rules(sample),
        resource=resource,
        queue_size=_positive(
            "queue_size", queue_size or env.get("WIDEEVENTS_QUEUE_SIZE") or 50_000, int
        ),
        flush_interval=_positive(
            "flush_interval",
            flush_interval or env.get("WIDEEVENTS_FLUSH_INTERVAL") or 1.0,
            float,
        ),
    )
