"""Where redacted events go: the :class:`Sink` interface and the built-in sinks.

A sink receives :class:`Batch` objects on the pipeline's worker thread (or, when it is
``inline_safe``, on an HTTP integration's thread right after a response went out). ``export``
must not block for long and may raise: the pipeline catches, counts and logs a failing sink,
and the other sinks still get the batch.
"""

from __future__ import annotations

from ._base import Batch, Sink
from ._jsonl import JsonLinesSink
from ._memory import MemorySink
from ._registry import from_spec, from_specs

__all__ = ["Batch", "JsonLinesSink", "MemorySink", "Sink", "from_spec", "from_specs"]
