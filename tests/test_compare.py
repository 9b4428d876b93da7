"""``wideevents compare``: statistics checked against SciPy, error rates, verdicts, exit codes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from wideevents.query import Store, TimeRange, parse_filter
from wideevents.query.compare import Metric, Thresholds, compare, parse_metric
from wideevents.query.parse import QueryError
from wideevents.store.paths import StorePaths
from wideevents.store.spool import SpoolWriter

from .test_query import NOW, cli, make_store

BASE, CAND = [parse_filter("arm = base")], [parse_filter("arm = cand")]


def run(db: Path, metrics: list[str], where: tuple[str, ...] = (), **thresholds: Any) -> Any:
    with Store(db) as store:
        return compare(
            store,
            BASE,
            CAND,
            [parse_filter(w) for w in where],
            TimeRange(),
            [parse_metric(m) for m in metrics],
            Thresholds(**thresholds),
        )


def arms(base: list[Any], cand: list[Any], field: str = "v", **extra: Any) -> list[dict[str, Any]]:
    return [{"arm": "base", field: x, **extra} for x in base] + [
        {"arm": "cand", field: x, **extra} for x in cand
    ]


# --- the statistics agree with SciPy --------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mann_whitney_matches_scipy_with_ties(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 12, 300).astype(float)  # few values: many ties
    cand = rng.integers(1, 13, 200).astype(float)
    row = run(make_store(tmp_path / "s.duckdb", arms(list(base), list(cand))), ["v"])["metrics"][0]
    ref = stats.mannwhitneyu(cand, base, alternative="two-sided", method="asymptotic")
    assert row["u"] == pytest.approx(ref.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert row["rank_biserial"] == pytest.approx(2 * ref.statistic / (200 * 300) - 1, rel=1e-12)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert row["candidate"][name] == np.quantile(cand, q, method="inverted_cdf")
        assert row["baseline"][name] == np.quantile(base, q, method="inverted_cdf")


def test_weighted_ranks_are_scipy_on_the_expanded_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base, cand = rng.normal(100, 20, 250).round(), rng.normal(104, 20, 150).round()
    wb, wc = rng.choice([1, 1, 5, 20], 250), rng.choice([1, 1, 5, 20], 150)
    records = [
        {"arm": "base", "v": x, "sample_rate": int(w)} for x, w in zip(base, wb, strict=True)
    ]
    records += [
        {"arm": "cand", "v": x, "sample_rate": int(w)} for x, w in zip(cand, wc, strict=True)
    ]
    row = run(make_store(tmp_path / "w.duckdb", records), ["v"])["metrics"][0]
    xb, xc = np.repeat(base, wb), np.repeat(cand, wc)
    ref = stats.mannwhitneyu(xc, xb, alternative="two-sided", method="asymptotic")
    assert row["candidate"]["weighted"] == wc.sum()
    assert row["u"] == pytest.approx(ref.statistic, rel=1e-12)
    assert row["rank_biserial"] == pytest.approx(
        2 * ref.statistic / (wc.sum() * wb.sum()) - 1, rel=1e-12
    )
    assert row["candidate"]["p90"] == np.quantile(xc, 0.9, method="inverted_cdf")
    # Sampling adds no information: the test is not 5-20x as confident as the stored events.
    assert row["p_value"] > ref.pvalue


def test_uniformly_sampled_events_are_tested_as_stored(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    base, cand = rng.normal(50, 10, 400).round(1), rng.normal(51.5, 10, 300).round(1)
    records = [{**r, "sample_rate": 10} for r in arms(list(base), list(cand))]
    row = run(make_store(tmp_path / "u.duckdb", records), ["v"])["metrics"][0]
    ref = stats.mannwhitneyu(cand, base, alternative="two-sided", method="asymptotic")
    assert row["candidate"]["weighted"] == 3000
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)


@pytest.mark.parametrize(("bad_base", "bad_cand"), [(30, 52), (3, 4), (0, 0), (500, 410)])
def test_two_proportion_test_matches_chi_square(
    tmp_path: Path, bad_base: int, bad_cand: int
) -> None:
    base = [True] * bad_base + [False] * (1000 - bad_base)
    cand = [True] * bad_cand + [False] * (800 - bad_cand)
    db = make_store(tmp_path / "p.duckdb", arms(base, cand, field="error"))
    row = run(db, ["rate(error)"])["metrics"][0]
    assert row["candidate"]["rate"] == bad_cand / 800
    assert row["difference"] == pytest.approx(bad_cand / 800 - bad_base / 1000)
    if bad_base + bad_cand == 0:
        assert row["p_value"] == 1.0
        return
    table = [[bad_cand, 800 - bad_cand], [bad_base, 1000 - bad_base]]
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert row["p_value"] == pytest.approx(p, rel=1e-9)
    assert row["z"] ** 2 == pytest.approx(chi2, rel=1e-9)


# --- error rates: neutral comparisons pass, planted regressions fail ------------------------


def arm_events(rng: Any, n: int, design: str, arm: str, error_rate: float = 0.03) -> list[Any]:
    """(duration, error, sample_rate) of one arm's stored events under a sampling design:
    every event kept ("unsampled"); weights 1 or 10 at random ("mixed"); the candidate
    kept 1 in 5 and the baseline whole ("unequal"); every error kept, 1 in 20 of the rest
    ("errors", the design's own tail-sampling rule)."""
    durations = rng.lognormal(3.5, 0.6, n).round(1)  # ties from the rounding
    errors = rng.random(n) < error_rate
    if design == "unsampled":
        rates = np.ones(n, dtype=int)
    elif design == "mixed":
        rates = rng.choice([1, 1, 1, 10], n)
    elif design == "unequal":
        rates = np.full(n, 5 if arm == "cand" else 1)
    else:
        rates = np.where(errors, 1, 20)
    kept = rng.random(n) < 1 / rates if design in ("unequal", "errors") else np.ones(n, bool)
    return list(zip(durations[kept], errors[kept], rates[kept], strict=True))


def neutral_store(db: Path, trials: int, n: int, seed: int, design: str) -> Path:
    rng = np.random.default_rng(seed)
    records = [
        {"trial": t, "arm": arm, "duration_ms": d, "error": bool(e), "sample_rate": int(w)}
        for t in range(trials)
        for arm in ("base", "cand")
        for d, e, w in arm_events(rng, n, design, arm)
    ]
    return make_store(db, records)


@pytest.mark.parametrize(
    ("design", "n"), [("unsampled", 200), ("mixed", 200), ("unequal", 500), ("errors", 2000)]
)
def test_neutral_comparisons_fail_at_most_alpha_of_the_time(
    tmp_path: Path, design: str, n: int
) -> None:
    trials, alpha = 300, 0.05
    db = neutral_store(tmp_path / "n.duckdb", trials, n, seed=11, design=design)
    metrics = [parse_metric("duration_ms"), parse_metric("rate(error)")]
    fails = 0
    with Store(db) as store:
        for t in range(trials):
            result = compare(
                store, BASE, CAND, [parse_filter(f"trial = {t}")], TimeRange(), metrics
            )
            assert result["verdict"] in ("pass", "fail")
            fails += result["verdict"] == "fail"
    assert fails / trials <= alpha, f"{fails} of {trials} neutral comparisons failed"


def test_errors_kept_whole_by_sampling_still_tell_one_point(tmp_path: Path) -> None:
    # Every error kept, 1 in 20 of the rest (the tail-sampling rule): 3% -> 4% errors over
    # 20,000 requests a side, about 1,600 stored events a side, is caught.
    rng = np.random.default_rng(12)
    records = [
        {"arm": arm, "duration_ms": d, "error": bool(e), "sample_rate": int(w)}
        for arm, rate in (("base", 0.03), ("cand", 0.04))
        for d, e, w in arm_events(rng, 20_000, "errors", arm, error_rate=rate)
    ]
    result = run(make_store(tmp_path / "e.duckdb", records), ["rate(error)"])
    errors = result["metrics"][0]
    assert errors["candidate"]["events"] < 2000
    assert errors["class"] == "High", errors
    assert errors["difference"] == pytest.approx(0.01, abs=0.004)


def test_planted_latency_regression_is_caught_and_explained(tmp_path: Path) -> None:
    # +20% latency on 10% of the candidate's requests: those that hit shard 3.
    rng = random.Random(3)
    records = []
    for arm in ("base", "cand"):
        for _ in range(10_000):
            shard = rng.randrange(10)
            d = round(rng.lognormvariate(3.5, 0.3), 2)
            if arm == "cand" and shard == 3:
                d = round(d * 1.2, 2)
            region = rng.choice(["eu", "us"])
            records.append({"arm": arm, "duration_ms": d, "db.shard": shard, "region": region})
    result = run(make_store(tmp_path / "r.duckdb", records), ["duration_ms", "rate(error)"])
    latency, errors = result["metrics"]
    assert latency["class"] == "High" and latency["fails"]
    assert errors["class"] == "Pass"
    assert result["verdict"] == "fail" and result["exit_code"] == 1
    assert result["score"] == 50.0
    top = latency["why"]["fields"][0]
    assert top["field"] == "db.shard"
    assert top["values"][0]["value"] == "3"


def test_one_point_more_errors_is_caught(tmp_path: Path) -> None:
    rng = random.Random(4)
    records = [
        {"arm": arm, "duration_ms": rng.lognormvariate(3, 0.5), "error": rng.random() < rate}
        for arm, rate in (("base", 0.01), ("cand", 0.02))
        for _ in range(6000)
    ]
    result = run(make_store(tmp_path / "e.duckdb", records), ["duration_ms", "rate(error)"])
    latency, errors = result["metrics"]
    assert latency["class"] == "Pass"
    assert errors["class"] == "High" and errors["fails"]
    assert errors["difference"] == pytest.approx(0.01, abs=0.004)
    assert result["verdict"] == "fail"


def test_lower_is_better_and_tolerance(tmp_path: Path) -> None:
    rng = random.Random(8)
    base = [rng.gauss(100, 10) for _ in range(3000)]
    cand = [x * 0.9 for x in base]  # 10% lower
    db = make_store(tmp_path / "l.duckdb", arms(base, cand))
    lower = run(db, ["v"])["metrics"][0]
    assert lower["class"] == "Low" and not lower["fails"]  # lower latency is good
    assert run(db, ["v worse=lower"])["verdict"] == "fail"
    assert run(db, ["v worse=either"])["verdict"] == "fail"
    # Significant, but inside a 15% tolerance: a pass.
    assert run(db, ["v worse=lower tolerance=15%"])["metrics"][0]["class"] == "Pass"


def test_too_few_events_is_no_data_never_a_pass(tmp_path: Path) -> None:
    db = make_store(tmp_path / "f.duckdb", arms([1.0] * 100, [1.0] * 10, field="duration_ms"))
    result = run(db, ["duration_ms", "rate(error)"])
    assert [m["class"] for m in result["metrics"]] == ["NoData", "NoData"]
    assert result["verdict"] == "nodata" and result["exit_code"] == 4
    assert result["score"] is None
    assert "candidate 10" in result["metrics"][0]["reason"]


def test_a_failing_metric_outweighs_missing_data(tmp_path: Path) -> None:
    # The latency fails; a field only three events have is NoData: the verdict is still fail.
    records = arms([10.0] * 300, [50.0] * 300, field="duration_ms")
    for r in records[:3]:
        r["rare"] = 1.0
    result = run(make_store(tmp_path / "m.duckdb", records), ["duration_ms", "rare"])
    assert [m["class"] for m in result["metrics"]] == ["High", "NoData"]
    assert result["verdict"] == "fail" and result["score"] == 0.0


def test_a_failing_metric_with_missing_data_is_marginal_not_no_data(tmp_path: Path) -> None:
    # Latency fails (weight 1), errors pass (weight 4), "rare" has no data: 80 is marginal,
    # and a failing metric never reads as "not enough data".
    records = arms([10.0] * 300, [50.0] * 300, field="duration_ms")
    records[0]["rare"] = 1.0
    result = run(
        make_store(tmp_path / "m.duckdb", records), ["duration_ms", "rate(error) weight=4", "rare"]
    )
    assert [m["class"] for m in result["metrics"]] == ["High", "Pass", "NoData"]
    assert result["score"] == 80.0
    assert result["verdict"] == "marginal" and result["exit_code"] == 3


def test_an_empty_group_has_no_percentiles(tmp_path: Path) -> None:
    db = make_store(tmp_path / "z.duckdb", arms([5.0, 6.0, 7.0] * 30, [], field="duration_ms"))
    row = run(db, ["duration_ms"])["metrics"][0]
    assert row["class"] == "NoData"
    assert row["candidate"] == {
        "events": 0, "weighted": 0.0, "p10": None, "p50": None, "p90": None, "p99": None
    }  # fmt: skip
    assert row["baseline"]["p50"] == 6.0


def test_sample_rates_below_one_count_as_one(tmp_path: Path) -> None:
    records = [{**r, "sample_rate": 0} for r in arms([1.0] * 100, [1.0] * 100, field="error")]
    records = [{**r, "error": False} for r in records]
    result = run(make_store(tmp_path / "0.duckdb", records), ["rate(error)"])
    assert result["metrics"][0]["candidate"]["weighted"] == 100.0
    assert result["verdict"] == "pass"


def test_tolerance_keeps_a_small_significant_rise_a_pass(tmp_path: Path) -> None:
    rng = random.Random(13)
    base = [rng.gauss(100, 5) for _ in range(4000)]
    cand = [x * 1.03 for x in base]  # 3% slower, very significant
    db = make_store(tmp_path / "t.duckdb", arms(base, cand))
    assert run(db, ["v"])["metrics"][0]["class"] == "High"
    assert run(db, ["v tolerance=5%"])["metrics"][0]["class"] == "Pass"
    assert run(db, ["v tolerance=2%"])["metrics"][0]["class"] == "High"


def test_fewer_errors_is_low_and_fails_only_when_lower_is_worse(tmp_path: Path) -> None:
    base = [True] * 60 + [False] * 940
    cand = [True] * 10 + [False] * 990
    db = make_store(tmp_path / "low.duckdb", arms(base, cand, field="hit"))
    row = run(db, ["rate(hit)"])["metrics"][0]
    assert row["class"] == "Low" and not row["fails"]
    lower = run(db, ["rate(hit) worse=lower"])
    assert lower["verdict"] == "fail"
    assert lower["metrics"][0]["why"]["bad"] == "hit != true"


def test_why_compares_bad_events_with_bad_events(tmp_path: Path) -> None:
    # /search is slow in both groups; the canary is also slow on shard 3. Against all the
    # baseline's events the route would lead; against its slow events, only the shard.
    rng = random.Random(14)
    records = []
    for arm in ("base", "cand"):
        for _ in range(6000):
            route = rng.choice(["/search", "/a", "/b", "/c"])
            shard = rng.randrange(8)
            d = rng.lognormvariate(5 if route == "/search" else 3, 0.3)
            if arm == "cand" and shard == 3:
                d *= 2
            records.append({"arm": arm, "duration_ms": d, "route": route, "shard": shard})
    latency = run(make_store(tmp_path / "w.duckdb", records), ["duration_ms"])["metrics"][0]
    assert latency["class"] == "High"
    named = [f["field"] for f in latency["why"]["fields"]]
    assert named[0] == "shard", named
    assert "route" not in named
    assert latency["why"]["against"] == "the baseline's events with the same condition"


def test_why_falls_back_to_all_baseline_events(tmp_path: Path) -> None:
    # Discrete values: nothing in the baseline is above its own p90.
    records = [{"arm": "base", "duration_ms": 10.0, "host": f"h{i % 4}"} for i in range(400)]
    records += [
        {"arm": "cand", "duration_ms": 50.0 if i % 2 else 10.0, "host": "c1" if i % 2 else "h0"}
        for i in range(400)
    ]
    latency = run(make_store(tmp_path / "f.duckdb", records), ["duration_ms"])["metrics"][0]
    assert latency["class"] == "High"
    why = latency["why"]
    assert why["against"] == "all the baseline's events (none has it)"
    assert [f["field"] for f in why["fields"]] == ["host"]
    assert why["fields"][0]["values"][0] == {
        "value": "c1", "selection_pct": 100.0, "baseline_pct": 0.0
    }  # fmt: skip


# --- the CLI: exit codes, output, usage errors ----------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> str:
    rng = random.Random(9)
    records = []
    for arm, n in (("base", 2000), ("cand", 400)):
        for _ in range(n):
            slow = arm == "cand" and rng.random() < 0.3
            records.append(
                {
                    "arm": arm,
                    "duration_ms": round(rng.lognormvariate(3, 0.4) * (3 if slow else 1), 2),
                    "error": rng.random() < 0.01,
                    "host": "canary-1" if arm == "cand" and slow else f"h{rng.randrange(4)}",
                    "flag": rng.random() < 0.5,
                }
            )
    return str(make_store(tmp_path / "canary.duckdb", records))


def test_cli_exit_codes(canary: str) -> None:
    fail = cli("compare", "--db", canary, "-b", "arm = base", "-c", "arm = cand")
    assert fail.exit_code == 1, fail.output
    assert "FAIL" in fail.output and "High" in fail.output
    assert "why duration_ms is High" in fail.output and "canary-1" in fail.output
    assert "next: wideevents events" in fail.output
    week = cli("compare", "--db", canary, "-b", "arm = base", "-c", "arm = cand", "--since", "7d")
    assert week.output.splitlines()[-1].endswith(f" --since 7d --db {canary}")

    ok = cli("compare", "--db", canary, "-b", "flag = off", "-c", "flag = on", "-w", "arm = base")
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output

    # Latency fails (weight 1), the error rate passes (weight 5): 83 is marginal.
    marginal = cli(
        "compare", "--db", canary, "-b", "arm = base", "-c", "arm = cand",
        "-m", "duration_ms", "-m", "rate(error) weight=5",
    )  # fmt: skip
    assert marginal.exit_code == 3, marginal.output
    assert "score 83.3 / 100: MARGINAL" in marginal.output

    few = cli("compare", "--db", canary, "-b", "arm = base", "-c", "host = nowhere")
    assert few.exit_code == 4, few.output
    assert "too few events" in few.output


def test_cli_json_is_one_object(canary: str) -> None:
    result = cli(
        "compare", "--db", canary, "-b", "arm = base", "-c", "arm = cand", "--format", "json"
    )
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["candidate"]["events"] == 400 and doc["baseline"]["events"] == 2000
    assert [m["metric"] for m in doc["metrics"]] == ["duration_ms", "rate(error)"]
    assert doc["metrics"][0]["why"]["fields"][0]["field"] == "host"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "arm = base", "-c", "arm exists"], "match both"),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "host"], "numeric field"),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "duration_ms worse=up"], "worse=higher"),
        (
            ["-b", "arm = base", "-c", "arm = cand", "-m", "duration_ms colour=red"],
            "unknown metric",
        ),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "rate(error"], "unclosed"),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "duraton_ms"], "did you mean"),
        (["-b", "arm = base", "-c", "arm => cand"], "expected a value"),
        (["-b", "arm = base", "-c", "arm = cand", "--pass", "70"], "above --pass"),
        (["-b", "arm = base", "-c", "arm = cand", "--alpha", "0"], "alpha"),
        (["-b", "arm = base", "-c", "arm = cand", "--follow", "--every", "0s"], "at least 1s"),
        (
            ["-b", "arm = base", "-c", "arm = cand", "--from", "2030-01-01", "--to", "2020-01-01"],
            "not before",
        ),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "duration_ms > 5"], "rate(duration_ms"),
        (["-b", "arm = base", "-c", "arm = cand", "-m", "duration_ms tolerance=5%%"], "tolerance"),
        (["-c", "arm = cand"], "--baseline"),
    ],
)
def test_cli_usage_errors_exit_2(canary: str, args: list[str], message: str) -> None:
    result = cli("compare", "--db", canary, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_metric_specs() -> None:
    m = parse_metric("rate(http.response.status_code >= 500) tolerance=0.5% weight=2")
    assert m == Metric(
        "rate(http.response.status_code >= 500)",
        "rate",
        "http.response.status_code",
        parse_filter("http.response.status_code >= 500"),
        tolerance=0.005,
        weight=2.0,
    )
    assert parse_metric("db.rows worse=lower tolerance=0.1").tolerance == pytest.approx(0.1)
    assert parse_metric("rate (error)") == parse_metric("rate(error)")
    with pytest.raises(QueryError, match="weight"):
        parse_metric("duration_ms weight=-1")


# --- --follow --------------------------------------------------------------------------------


def test_follow_exits_at_the_first_fail(tmp_path: Path) -> None:
    db = tmp_path / "follow.duckdb"
    rng = random.Random(10)
    make_store(
        db,
        [
            {"arm": arm, "duration_ms": rng.lognormvariate(3, 0.3)}
            for arm in ("base", "cand")
            for _ in range(300)
        ],
    )
    args = ["-b", "arm = base", "-c", "arm = cand", "-m", "duration_ms", "--db", str(db)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wideevents.cli", "compare", *args, "--follow", "--every", "1s",
         "--for", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "pass" in first, first
    started = time.monotonic()
    # A bad canary starts writing: its events reach the spool, the next evaluation fails.
    writer = SpoolWriter(StorePaths.for_db(db))
    slow = [
        {
            "timestamp": NOW.isoformat(),
            "name": "request",
            "trace_id": f"{i + 10**6:032x}",
            "span_id": f"{i + 10**6:016x}",
            "error": False,
            "sample_rate": 1,
            "arm": "cand",
            "duration_ms": 500.0 + i,
        }
        for i in range(300)
    ]
    writer.write([json.dumps(r).encode() + b"\n" for r in slow])
    writer.seal()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, out + err
    assert time.monotonic() - started < 10  # long before --for 60s
    assert "FAIL" in out


def test_follow_ends_with_the_last_verdict(canary: str) -> None:
    started = time.monotonic()
    result = cli(
        "compare", "--db", canary, "-b", "flag = off", "-c", "flag = on", "-w", "arm = base",
        "--follow", "--every", "1s", "--for", "2s", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) >= 2 and all(doc["verdict"] == "pass" for doc in lines)
    assert 1.5 < time.monotonic() - started < 10
