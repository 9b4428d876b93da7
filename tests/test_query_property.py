"""Random queries over random events agree with a plain-Python oracle; random input never
crashes the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wideevents.cli import main

from .test_query import make_store

FIELDS = {"route": ["/a", "/b", "/c"], "status": [200, 404, 500], "flag": [True, False]}

events_st = st.lists(
    st.fixed_dictionaries(
        {"sample_rate": st.sampled_from([1, 1, 1, 3, 10])},
        optional={
            "route": st.sampled_from(FIELDS["route"]),
            "status": st.sampled_from(FIELDS["status"]),
            "flag": st.booleans(),
            "ms": st.floats(min_value=0, max_value=5000, allow_nan=False).map(
                lambda x: round(x, 3)
            ),
        },
    ),
    min_size=1,
    max_size=40,
)

CALCS = [
    "count",
    "sum(ms)",
    "avg(ms)",
    "min(ms)",
    "max(ms)",
    "p50(ms)",
    "p90(ms)",
    "p99(ms)",
    "count_distinct(route)",
]

filters_st = st.one_of(
    st.tuples(
        st.just("route"),
        st.sampled_from(["=", "!=", "contains", "!contains", "starts-with"]),
        st.sampled_from(["/a", "/b", "b", "/", "zz"]),
    ),
    st.tuples(
        st.just("status"),
        st.sampled_from(["=", "!=", ">", ">=", "<", "<="]),
        st.sampled_from(["200", "404", "500", "0"]),
    ),
    st.tuples(
        st.sampled_from(["route", "status", "flag", "ms"]),
        st.sampled_from(["exists", "!exists"]),
        st.just(""),
    ),
    st.tuples(
        st.just("status"),
        st.sampled_from(["in", "not-in"]),
        st.sampled_from(["(200)", "(200, 500)", "(404, 500)"]),
    ),
    st.tuples(st.just("flag"), st.sampled_from(["=", "!="]), st.sampled_from(["true", "false"])),
)


def matches(e: dict[str, Any], field: str, op: str, raw: str) -> bool:
    v = e.get(field)
    if op == "exists":
        return v is not None
    if op == "!exists":
        return v is None
    if op in ("in", "not-in"):
        items = [int(x) for x in raw.strip("()").split(",")]
        return (v in items) if op == "in" else (v is None or v not in items)
    if op in ("contains", "!contains", "starts-with"):
        text = None if v is None else str(v)
        if op == "contains":
            return text is not None and raw in text
        if op == "!contains":
            return text is None or raw not in text
        return text is not None and text.startswith(raw)
    value: Any = {"status": int, "flag": lambda s: s == "true"}.get(field, str)(raw)
    if op == "=":
        return v is not None and v == value
    if op == "!=":
        return v is None or v != value
    if v is None:
        return False
    return {">": v > value, ">=": v >= value, "<": v < value, "<=": v <= value}[op]


def oracle_calc(calc: str, events: list[dict[str, Any]]) -> Any:
    if calc == "count":
        return sum(e["sample_rate"] for e in events)
    if calc == "count_distinct(route)":
        return len({e["route"] for e in events if "route" in e})
    pairs = sorted((e["ms"], e["sample_rate"]) for e in events if "ms" in e)
    if not pairs:
        return None
    total = sum(w for _, w in pairs)
    if calc == "sum(ms)":
        return sum(v * w for v, w in pairs)
    if calc == "avg(ms)":
        return sum(v * w for v, w in pairs) / total
    if calc == "min(ms)":
        return pairs[0][0]
    if calc == "max(ms)":
        return pairs[-1][0]
    q = {"p50(ms)": 0.5, "p90(ms)": 0.9, "p99(ms)": 0.99}[calc]
    rank = math.ceil(total * q)  # the smallest value with at least q of the weight at or below
    seen = 0
    for v, w in pairs:
        seen += w
        if seen >= rank:
            return v
    return pairs[-1][0]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    events=events_st,
    calcs=st.lists(st.sampled_from(CALCS), min_size=1, max_size=3, unique=True),
    group=st.sampled_from([None, "route", "status", "flag"]),
    filt=st.none() | filters_st,
)
def test_random_queries_agree_with_the_oracle(
    tmp_path_factory: Any,
    events: list[dict[str, Any]],
    calcs: list[str],
    group: str | None,
    filt: tuple[str, str, str] | None,
) -> None:
    for field, values in FIELDS.items():  # every column exists, even if no event has it
        events = [*events, {"sample_rate": 1, field: values[0], "ms": 1.0, "__pad": True}]
    db = make_store(tmp_path_factory.mktemp("q") / "q.duckdb", events)
    args = ["query", "--db", str(db), "--format", "json", "--limit", "1000"]
    for c in calcs:
        args += ["-c", c]
    if group:
        args += ["-g", group]
    if filt:
        field, op, raw = filt
        args += ["--where", f"{field} {op} {raw}".strip()]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)

    kept = [e for e in events if filt is None or matches(e, *filt)]
    groups: dict[Any, list[dict[str, Any]]] = {}
    if group:
        for e in kept:
            groups.setdefault(e.get(group), []).append(e)
    else:
        groups[None] = kept
    expected = {key: {c: oracle_calc(c, evs) for c in calcs} for key, evs in groups.items()}
    got = {(r[group] if group else None): {c: r[c] for c in calcs} for r in rows}
    assert set(got) == set(expected)
    for key, calc_values in expected.items():
        for c, value in calc_values.items():
            assert same(got[key][c], value), (key, c, got[key][c], value)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(where=st.text(max_size=40), calc=st.text(max_size=25))
def test_arbitrary_input_gives_a_result_or_exit_2(
    tmp_path_factory: Any, where: str, calc: str
) -> None:
    db = _fuzz_store(tmp_path_factory)
    for args in (["--where", where], ["-c", calc], ["-g", where], ["--having", calc]):
        result = CliRunner().invoke(main, ["query", "--db", str(db), "--format", "json", *args])
        assert result.exit_code in (0, 2), (args, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        if result.exit_code == 0:
            assert isinstance(json.loads(result.output), list)
        else:
            assert result.output.startswith(("Error: ", "Usage: ")), result.output


_FUZZ_DB: list[Path] = []


def _fuzz_store(factory: Any) -> Path:
    if not _FUZZ_DB:
        _FUZZ_DB.append(
            make_store(
                factory.mktemp("fuzz") / "f.duckdb",
                [
                    {
                        "route": "/a",
                        "status": 200,
                        "ms": 1.5,
                        "flag": True,
                        "when": "2026-01-01T00:00:00Z",
                    },
                    {"route": "/b", "status": 500, "ms": 9.0, "flag": False},
                ],
            )
        )
    return _FUZZ_DB[0]
