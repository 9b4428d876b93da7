"""The query layer and the CLI over a store with known contents."""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from wideevents.cli import main
from wideevents.store.ingest import ingest_store
from wideevents.store.paths import StorePaths
from wideevents.store.spool import SpoolWriter

NOW = datetime.now(timezone.utc).replace(microsecond=0)
INJECTION = 'x"; DROP TABLE events; --'


def make_store(db: Path, records: Iterable[dict[str, Any]]) -> Path:
    """A store holding exactly *records* (core fields filled in where missing)."""
    writer = SpoolWriter(StorePaths.for_db(db))
    lines = []
    for n, r in enumerate(records):
        full = {
            "timestamp": (NOW - timedelta(minutes=30) + timedelta(seconds=n)).isoformat(),
            "name": "request",
            "trace_id": f"{n // 3:032x}",
            "span_id": f"{n + 1:016x}",
            "parent_id": None,
            "error": False,
            "sample_rate": 1,
            "duration_ms": 1.0,
            **r,
        }
        lines.append(json.dumps(full).encode() + b"\n")
    writer.write(lines)
    writer.seal()
    ingest_store(db)
    return db


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def ok_json(*args: str) -> Any:
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return json.loads(result.output)


@pytest.fixture
def shop(tmp_path: Path) -> str:
    records = []
    for i in range(60):
        route = ["/a", "/b", "/c"][i % 3]
        slow = route == "/b" and i % 2 == 1
        records.append(
            {
                "http.route": route,
                "status": 500 if slow else 200,
                "duration_ms": 1000.0 + i if slow else float(i),
                "build": "new" if slow else ["old", "new"][i % 2],
                "user.id": i % 7,
                INJECTION: "odd",
            }
        )
    return str(make_store(tmp_path / "shop.duckdb", records))


def test_query_groups_and_calcs_exact_json(shop: str) -> None:
    rows = ok_json(
        "query",
        "--db",
        shop,
        "-c",
        "count",
        "-c",
        "max(duration_ms)",
        "-c",
        "count_distinct(user.id)",
        "-g",
        "http.route",
        "--order",
        "http.route asc",
    )
    assert rows == [
        {"http.route": "/a", "count": 20, "max(duration_ms)": 57.0, "count_distinct(user.id)": 7},
        {"http.route": "/b", "count": 20, "max(duration_ms)": 1055.0, "count_distinct(user.id)": 7},
        {"http.route": "/c", "count": 20, "max(duration_ms)": 59.0, "count_distinct(user.id)": 7},
    ]


def test_filters_having_limit(shop: str) -> None:
    rows = ok_json(
        "query",
        "--db",
        shop,
        "-c",
        "count",
        "-g",
        "status",
        "--where",
        "http.route in (/a, /b)",
        "--having",
        "count > 10",
    )
    assert rows == [{"status": 200, "count": 30}]
    rows = ok_json("query", "--db", shop, "--where", "status >= 500", "--where", "build = new")
    assert rows == [{"count": 10}]
    rows = ok_json("query", "--db", shop, "-g", "user.id", "--limit", "2", "--order", "user.id asc")
    assert [r["user.id"] for r in rows] == [0, 1]


@pytest.mark.parametrize(
    ("expr", "count"),
    [
        ("http.route = /a", 20),
        ("http.route != /a", 40),
        ("status > 200", 10),
        ("status <= 200", 50),
        ("http.route contains b", 20),
        ("http.route !contains b", 40),
        ("http.route starts-with /", 60),
        ("status not-in (500)", 50),
        ("build exists", 60),
        ("nothing.here !exists", None),
        ("status in (200, 500)", 60),
    ],
)
def test_every_filter_operator(shop: str, expr: str, count: int | None) -> None:
    result = cli("query", "--db", shop, "--where", expr, "--format", "json")
    if count is None:
        assert result.exit_code == 2 and "unknown field 'nothing.here'" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == [{"count": count}]


def test_granularity_gives_a_time_series(shop: str) -> None:
    rows = ok_json("query", "--db", shop, "--granularity", "10s", "--since", "1h")
    assert sum(r["count"] for r in rows) == 60
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert all(set(r) == {"time", "count"} for r in rows)
    assert ok_json("query", "--db", shop, "--since", "10m") == [{"count": 0}]


def test_heatmap_counts_every_event(shop: str) -> None:
    (row,) = ok_json("query", "--db", shop, "-c", "heatmap(duration_ms)")
    heat = row["heatmap(duration_ms)"]
    assert sum(heat["counts"]) == 60
    assert len(heat["edges"]) == len(heat["counts"]) + 1


def test_sampled_events_are_weighted(tmp_path: Path) -> None:
    db = make_store(
        tmp_path / "s.duckdb",
        [
            {"duration_ms": 10.0, "sample_rate": 1},
            {"duration_ms": 20.0, "sample_rate": 1},
            {"duration_ms": 100.0, "sample_rate": 8},
            {"route": "/x", "duration_ms": 5.0, "sample_rate": 2},
        ],
    )
    (row,) = ok_json(
        "query",
        "--db",
        str(db),
        "-c",
        "count",
        "-c",
        "sum(duration_ms)",
        "-c",
        "avg(duration_ms)",
        "-c",
        "p50(duration_ms)",
        "-c",
        "p90(duration_ms)",
        "-c",
        "min(duration_ms)",
        "-c",
        "count_distinct(duration_ms)",
    )
    assert row["count"] == 12
    assert row["sum(duration_ms)"] == pytest.approx(10 + 20 + 800 + 10)
    assert row["avg(duration_ms)"] == pytest.approx(840 / 12)
    assert row["p50(duration_ms)"] == 100.0  # 8 of the 12 events took 100 ms
    assert row["p90(duration_ms)"] == 100.0
    assert row["min(duration_ms)"] == 5.0
    assert row["count_distinct(duration_ms)"] == 4  # not weighted, as documented


def test_unknown_field_suggests_close_names(shop: str) -> None:
    result = cli("query", "--db", shop, "-g", "http.rout")
    assert result.exit_code == 2
    assert "Error: unknown field 'http.rout'; did you mean 'http.route'?" in result.output
    assert "Traceback" not in result.output


def test_malformed_expression_points_at_the_bad_token(shop: str) -> None:
    result = cli("query", "--db", shop, "--where", "status ~= 500")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith("Error: unknown operator '~'")
    assert lines[1] == "  status ~= 500"
    assert lines[2] == "         ^"
    result = cli("query", "--db", shop, "-c", "p99(duration_ms")
    assert result.exit_code == 2 and "write p99(FIELD)" in result.output
    result = cli("query", "--db", shop, "--where", "status >= lots")
    assert (
        result.exit_code == 2 and "'status' holds BIGINT: 'lots' is not a number" in result.output
    )


@pytest.mark.parametrize(
    "value", ["x\ny", "tab\there\r", 'say "hi" \\now', "a=b", "it's", "", "!", "(x)", "plain"]
)
def test_a_filter_prints_as_text_that_parses_back_to_it(value: str) -> None:
    """The next-command hints (and the UI, which quotes the same way) write filters on one
    line: line breaks go in as \\n, and come back out as line breaks."""
    from wideevents.query import parse_filter
    from wideevents.query.model import Filter

    text = str(Filter("note", "=", (value,)))
    assert "\n" not in text and "\r" not in text
    assert parse_filter(text) == Filter("note", "=", (value,))
    assert parse_filter(r'note = "x\ny\tz\\n\q"').values == ("x\ny\tz\\nq",)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("http.route = /users/<int:user_id>", "/users/<int:user_id>"),
        ("http.route != /a/<b>/<c>", "/a/<b>/<c>"),
        ("note = x=y", "x=y"),
        ("note contains /<id>", "/<id>"),
    ],
)
def test_a_bare_value_without_spaces_is_all_of_it(text: str, value: str) -> None:
    from wideevents.query import parse_filter

    assert parse_filter(text).values == (value,)


@pytest.mark.parametrize(
    "text", ["http.route = /users/ <int:id>", 'note = a"b"', "note = (x)", "status >= 5 00"]
)
def test_a_value_with_spaces_or_quotes_inside_must_be_quoted(text: str) -> None:
    from wideevents.query import QueryError, parse_filter

    with pytest.raises(QueryError, match=r"quote a value|expected a value"):
        parse_filter(text)


def test_the_error_points_past_a_bare_value() -> None:
    from wideevents.query import QueryError, parse_filter

    with pytest.raises(QueryError) as raised:
        parse_filter("http.route = /users/<int:id> x")
    assert raised.value.message.startswith("unexpected 'x' after the value")
    assert raised.value.position == len("http.route = /users/<int:id> ")


def test_a_flask_route_template_filters_without_quotes(tmp_path: Path) -> None:
    routes = ["/users/<int:user_id>", "/users/<int:user_id>/orders", "/items"]
    db = str(make_store(tmp_path / "flask.duckdb", [{"http.route": r} for r in routes * 3]))
    for where in ("http.route = /users/<int:user_id>", 'http.route = "/users/<int:user_id>"'):
        assert ok_json("query", "--db", db, "--where", where, "-c", "count") == [{"count": 3}]


def test_injection_attempts_stay_data(shop: str) -> None:
    attempts = [
        ("--where", 'http.route = "/a\'; DROP TABLE events; --"'),
        ("--where", "http.route = '/a\"); DROP TABLE events; --'"),
        ("--where", f"`{INJECTION}` = odd"),
        ("-g", INJECTION),
        ("-c", f"count_distinct(`{INJECTION}`)"),
        ("--where", "http.route in ('/a', '); DELETE FROM events; --')"),
    ]
    for flag, value in attempts:
        result = cli("query", "--db", shop, flag, value, "--format", "json")
        assert result.exit_code == 0, (value, result.output)
    assert ok_json("query", "--db", shop, "--where", f"`{INJECTION}` = odd") == [{"count": 60}]
    assert ok_json("query", "--db", shop) == [{"count": 60}]  # the table is still whole


def test_breakdown_names_the_planted_cause(shop: str) -> None:
    results = ok_json("breakdown", "--db", shop, "--select", "duration_ms >= 1000")
    assert [set(r) >= {"field", "score", "values"} for r in results] == [True] * len(results)
    top = results[0]
    assert top["field"] in ("http.route", "status")
    assert top["score"] == 1.0
    by_field = {r["field"]: r for r in results}
    route = by_field["http.route"]["values"][0]
    assert route == {"value": "/b", "selection_pct": 100.0, "baseline_pct": 20.0}
    build = {v["value"]: v for v in by_field["build"]["values"]}
    assert build["new"]["selection_pct"] == 100.0 and build["old"]["selection_pct"] == 0.0
    scores = [r["score"] for r in results if not r["in_selection"] and not r.get("near_unique")]
    assert scores == sorted(scores, reverse=True)
    assert by_field["duration_ms"]["in_selection"] is True  # shown apart
    assert results[-1]["field"] == "duration_ms"


def test_breakdown_with_an_empty_selection_is_an_error(shop: str) -> None:
    result = cli("breakdown", "--db", shop, "--select", "duration_ms > 99999")
    assert result.exit_code == 2 and "matches no event" in result.output


def test_events_and_trace(shop: str) -> None:
    rows = ok_json(
        "events", "--db", shop, "--where", "status = 500", "--order", "duration_ms", "--limit", "3"
    )
    assert [r["duration_ms"] for r in rows] == [1055.0, 1049.0, 1043.0]
    table = cli("events", "--db", shop, "--where", "status = 500", "--limit", "1")
    assert table.exit_code == 0
    assert table.output.strip().splitlines()[-1].startswith("next: wideevents trace ")
    trace_id = rows[0]["trace_id"]
    tree = ok_json("trace", "--db", shop, trace_id)
    assert {e["trace_id"] for e in tree} == {trace_id}
    assert all(e["depth"] == 0 for e in tree)  # three roots, no parents in this fixture


def test_trace_tree_depths(tmp_path: Path) -> None:
    db = make_store(
        tmp_path / "t.duckdb",
        [
            {"trace_id": "a" * 32, "span_id": "1" * 16, "name": "root"},
            {"trace_id": "a" * 32, "span_id": "2" * 16, "parent_id": "1" * 16, "name": "child"},
            {
                "trace_id": "a" * 32,
                "span_id": "3" * 16,
                "parent_id": "2" * 16,
                "name": "grandchild",
            },
        ],
    )
    tree = ok_json("trace", "--db", str(db), "a" * 32)
    assert [(e["name"], e["depth"]) for e in tree] == [("root", 0), ("child", 1), ("grandchild", 2)]
    waterfall = cli("trace", "--db", str(db), "a" * 32)
    assert waterfall.exit_code == 0 and "    grandchild" in waterfall.output


def test_trace_survives_duplicate_spans_and_parent_cycles(tmp_path: Path) -> None:
    t = "b" * 32

    def span(span_id: str, parent: str | None, name: str) -> dict[str, Any]:
        return {"trace_id": t, "span_id": span_id * 16, "parent_id": parent, "name": name}

    db = make_store(
        tmp_path / "t.duckdb",
        [
            span("1", None, "root"),
            span("1", None, "root"),  # stored twice: an exporter retried
            span("2", "1" * 16, "child"),
            span("3", "3" * 16, "own parent"),
            span("4", "5" * 16, "cycle a"),
            span("5", "4" * 16, "cycle b"),
        ],
    )
    tree = ok_json("trace", "--db", str(db), t)
    assert [(e["name"], e["depth"]) for e in tree] == [
        ("root", 0),
        ("child", 1),
        ("own parent", 0),
        ("cycle a", 0),
        ("cycle b", 1),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "1000000000d"], "longer than"),
        (["--granularity", "99999999999d"], "longer than"),
        (["-c", "heatmap(http.route)"], "numeric"),
    ],
)
def test_out_of_range_input_is_exit_2(shop: str, args: list[str], message: str) -> None:
    result = cli("query", "--db", shop, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_fields_lists_the_schema(shop: str) -> None:
    rows = {r["name"]: r for r in ok_json("fields", "--db", shop)}
    assert rows["status"]["type"] == "BIGINT"
    assert rows["http.route"] == {
        "name": "http.route",
        "type": "VARCHAR",
        "distinct": 3,
        "null_pct": 0.0,
    }
    assert rows["error.type"]["null_pct"] == 100.0


def test_sql_is_read_only(shop: str) -> None:
    assert ok_json("sql", "--db", shop, "SELECT count(*) AS n FROM events") == [{"n": 60}]
    result = cli("sql", "--db", shop, "DELETE FROM events")
    assert result.exit_code == 1 and "read-only" in result.output
    assert ok_json("sql", "--db", shop, "SELECT count(*) AS n FROM events") == [{"n": 60}]


def test_missing_store_is_a_runtime_error(tmp_path: Path) -> None:
    result = cli("query", "--db", str(tmp_path / "none.duckdb"))
    assert result.exit_code == 1
    assert "no store at" in result.output and "wideevents demo" in result.output


def test_tables_end_with_the_next_drill_down(shop: str) -> None:
    q = cli("query", "--db", shop, "-c", "p99(duration_ms)", "-g", "http.route")
    assert q.exit_code == 0
    assert (
        "next: wideevents breakdown --where 'http.route = /b' --select 'duration_ms >= 1055'"
        in q.output
    )
    g = cli("query", "--db", shop, "-g", "build", "--order", "build desc")
    assert "next: wideevents breakdown --select 'build = old'" in g.output
    b = cli("breakdown", "--db", shop, "--select", "duration_ms >= 1000")
    assert b.exit_code == 0
    # The value over-represented among the selected events, never the one they lack:
    assert "--where 'duration_ms >= 1000' --where 'status = 500' --order duration_ms" in (b.output)


def test_the_next_drill_down_keeps_the_time_window(shop: str) -> None:
    q = cli("query", "--db", shop, "-c", "p99(duration_ms)", "-g", "http.route", "--since", "7d")
    assert q.exit_code == 0, q.output
    step = q.output.splitlines()[-1]
    assert step.startswith("next: wideevents breakdown ")
    assert step.endswith(f" --since 7d --db {shop}")
    window = ["--from", "2000-01-01", "--to", "2100-01-01T00:00:00"]
    b = cli("breakdown", "--db", shop, "--select", "duration_ms >= 1000", *window)
    assert b.exit_code == 0, b.output
    step = b.output.splitlines()[-1]
    assert step.startswith("next: wideevents events ")
    assert step.endswith(f" --from 2000-01-01 --to 2100-01-01T00:00:00 --db {shop}")
    # Followed as printed, each step sees the same events as the one before.
    followed = cli(*shlex.split(step.removeprefix("next: wideevents ")))
    assert followed.exit_code == 0 and "no events match" not in followed.output


def test_breakdown_over_more_than_64_fields(tmp_path: Path) -> None:
    records = [
        {
            **{f"f{k:02d}": (i + k) % 3 for k in range(80)},
            "slow": i % 5 == 0,
            "cause": "x" if i % 5 == 0 else "y",
        }
        for i in range(200)
    ]
    db = str(make_store(tmp_path / "wide.duckdb", records))
    results = ok_json("breakdown", "--db", db, "--select", "slow = true")
    assert results[0]["field"] == "cause"
    assert len([r for r in results if r["field"].startswith("f")]) == 80


def test_csv_output(shop: str) -> None:
    result = cli("query", "--db", shop, "-g", "status", "--format", "csv", "--order", "status asc")
    assert result.output.splitlines() == ["status,count", "200,50", "500,10"]


def test_nan_and_empty_results(shop: str) -> None:
    rows = ok_json("query", "--db", shop, "-c", "avg(duration_ms)", "--where", "status = 404")
    assert rows == [{"avg(duration_ms)": None}]
    assert not math.isnan(0.0)


def test_large_sides_are_sampled_and_still_find_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package re-exports the function under the module's name: fetch the module itself.
    module = sys.modules["wideevents.query.breakdown"]
    records = []
    for i in range(4000):
        bad = i % 10 == 0
        records.append(
            {
                "build": "bad" if bad else f"good{i % 3}",
                "region": f"r{i % 4}",
                "duration_ms": 900.0 + i % 50 if bad else float(i % 200),
            }
        )
    db = str(make_store(tmp_path / "big.duckdb", records))
    exact = ok_json("breakdown", "--db", db, "--select", "duration_ms >= 800")
    monkeypatch.setattr(module, "SIDE_ROWS", 300)
    monkeypatch.setattr(module, "PROFILE_ROWS", 500)
    sampled = ok_json("breakdown", "--db", db, "--select", "duration_ms >= 800")
    assert sampled[0]["field"] == exact[0]["field"] == "build"
    assert sampled[0]["values"][0]["value"] == "bad"
    assert abs(sampled[0]["score"] - exact[0]["score"]) < 0.05
    again = ok_json("breakdown", "--db", db, "--select", "duration_ms >= 800")
    assert again == sampled  # the sample is repeatable


def test_sql_cannot_reach_other_files_and_bad_sql_is_exit_2(shop: str, tmp_path: Path) -> None:
    result = cli("sql", "--db", shop, f"COPY (SELECT 1 AS a) TO '{tmp_path / 'out.csv'}'")
    assert result.exit_code == 1
    assert not (tmp_path / "out.csv").exists()
    assert cli("sql", "--db", shop, "SELEC count(*) FROM events").exit_code == 2


def test_events_columns_and_trace_ids_are_checked(shop: str) -> None:
    result = cli("events", "--db", shop, "--columns", "nosuch,name")
    assert result.exit_code == 2 and "unknown field 'nosuch'" in result.output
    assert cli("trace", "--db", shop, "not-a-trace").exit_code == 2
    for fmt in ("table", "json", "csv"):
        missing = cli("trace", "--db", shop, "f" * 32, "--format", fmt)
        assert missing.exit_code == 1 and "no events in trace" in missing.output


def test_json_fields_come_back_as_json(tmp_path: Path) -> None:
    db = make_store(tmp_path / "j.duckdb", [{"tags": ["a", "b"], "meta.redacted": ["password"]}])
    (row,) = ok_json("events", "--db", str(db))
    assert row["tags"] == ["a", "b"] and row["meta.redacted"] == ["password"]


def test_demo_walks_the_incident_and_gates_the_build(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.duckdb")
    result = cli("demo", "--db", db, "--requests", "6000")
    assert result.exit_code == 0, result.output
    out = result.output
    for step in range(1, 8):
        assert f"── {step}." in out
    breakdown = out[out.index("── 3.") : out.index("── 4.")]
    ranked = [line.split()[0] for line in breakdown.splitlines() if "  score " in line]
    assert ranked[0] == "service.version", breakdown
    assert "exit code 1: a deploy pipeline stops the rollout" in out
    assert "exit code 0: the flag is not what hurts" in out
    assert f"wideevents serve --db {db}" in out
