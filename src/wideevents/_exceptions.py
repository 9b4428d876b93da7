"""Exceptions raised by wideevents.

The tree::

    WideEventsError          base of everything this package raises on purpose
    ├── ConfigError          a bad argument to configure() or a bad environment variable
    └── MissingExtraError    an optional integration's framework is not installed

Telemetry never raises into the host application: these are raised only from
``configure()`` and explicit setup calls, where a mistake should stop the program early.
"""

from __future__ import annotations


class WideEventsError(Exception):
    """Base class of every error wideevents raises on purpose."""


class ConfigError(WideEventsError, ValueError):
    """A configuration value is invalid; the message says which and what is allowed."""


class MissingExtraError(WideEventsError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"{module!r} is not installed: pip install 'wideevents[{extra}]'")
        self.extra = extra
        self.module = module
