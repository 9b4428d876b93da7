from types import ModuleType

import wideevents


def test_all_is_the_public_api() -> None:
    # Kept sorted by ruff (RUF022, isort-style: constants, classes, then functions).
    assert len(set(wideevents.__all__)) == len(wideevents.__all__)
    # Submodules show up as attributes once imported; they are public by their own __all__.
    public = {
        n
        for n in dir(wideevents)
        if not n.startswith(("_", "@")) and not isinstance(getattr(wideevents, n), ModuleType)
    } | {"__version__"}
    assert set(wideevents.__all__) == public
    assert set(wideevents.__all__) == {
        "DROP",
        "ConfigError",
        "Event",
        "MissingExtraError",
        "Redaction",
        "WideEvents",
        "WideEventsError",
        "__version__",
        "add",
        "add_to_trace",
        "configure",
        "current_event",
        "event",
        "flush",
        "inject",
        "shutdown",
        "stats",
        "traceparent",
        "with_current_event",
    }
