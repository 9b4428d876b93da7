"""``compare`` over two groups of a million events each, in-process, against pulling the rows
into Python for SciPy.

The store (2,000,000 events by default, the same rows on every run) is generated straight
into the events table with DuckDB SQL, like bench_query's: requests with a lognormal
``duration_ms``, an ``error`` flag, a ``db.shard`` (0-9), a ``cloud.region``, a coin-flip
``flag.new_checkout`` and a ``canary`` flag on every other request. The canary is planted
with a regression: +20% latency on its requests to shard 3 (10% of them) and 1.5% errors
instead of 1%. Two comparisons, each of ``duration_ms`` (Mann-Whitney U) and ``rate(error)``
(two-proportion z-test), about a million events a side:

* neutral: ``flag.new_checkout = false`` vs ``= true``: the verdict must be ``pass``;
* regression: ``canary = false`` vs ``canary = true``: ``fail``, and the explanation must
  name ``db.shard``.

Timed, medians over rounds with the store opened once (outside the timing):

* ``compare`` without the explanation (the verdict);
* ``compare`` with it (plus one breakdown per failing metric);
* the naive way: fetch both groups' durations and errors into numpy and run SciPy's
  ``mannwhitneyu`` and a 2x2 chi-square (the reference the tests check against), whose
  p-values must agree with ours.

    .venv/bin/python benchmarks/bench_compare.py                 # 2,000,000 events
    .venv/bin/python benchmarks/bench_compare.py --events 400000 --runs 3
    .venv/bin/python benchmarks/bench_compare.py --keep .bench-compare   # reuse the data
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wideevents.query import Store, TimeRange, parse_filter
from wideevents.query.compare import compare, parse_metric
from wideevents.store.ingest import connect, ensure_tables
from wideevents.store.paths import StorePaths
from wideevents.store.schema import EVENTS, quote_ident

TARGET_S = 1.0
EVENTS_DEFAULT = 2_000_000
METRICS = [parse_metric("duration_ms"), parse_metric("rate(error)")]
CASES = {
    "neutral": ("flag.new_checkout = false", "flag.new_checkout = true", "pass"),
    "regression": ("canary = false", "canary = true", "fail"),
}
USER_COLUMNS = {
    "canary": "BOOLEAN",
    "db.shard": "BIGINT",
    "cloud.region": "VARCHAR",
    "flag.new_checkout": "BOOLEAN",
}


def _u(k: int) -> str:
    """A repeatable uniform number in [0, 1) for row i and stream k."""
    return f"((hash(i * 16 + {k}) % 1000000007) / 1000000007.0)"


def generate(db: Path, n: int) -> None:
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=True, timeout=30):
        con = connect(paths)
        try:
            ensure_tables(con)
            for name, typ in USER_COLUMNS.items():
                con.execute(f"ALTER TABLE {EVENTS} ADD COLUMN {quote_ident(name)} {typ}")
            con.execute(
                f"""
                INSERT INTO {EVENTS} BY NAME
                WITH b AS (
                    SELECT i, i % 2 = 1 AS canary, (hash(i * 16 + 1) % 10)::BIGINT AS shard,
                           sqrt(-2 * ln({_u(2)} + 1e-12)) * cos(2 * pi() * {_u(3)}) AS z
                    FROM range({n}) r(i)
                )
                SELECT now() - to_microseconds(i * 1000) AS timestamp, 'GET /orders' AS name,
                       lpad(to_hex(hash(i * 16 + 4)), 32, '0') AS trace_id,
                       lpad(to_hex(hash(i * 16 + 5)), 16, '0') AS span_id,
                       1::BIGINT AS sample_rate,
                       round(exp(3.5 + 0.5 * z)
                             * CASE WHEN canary AND shard = 3 THEN 1.2 ELSE 1 END, 3)
                           AS duration_ms,
                       {_u(6)} < CASE WHEN canary THEN 0.015 ELSE 0.01 END AS error,
                       canary AS "canary", shard AS "db.shard",
                       (['eu-west-1', 'us-east-1', 'ap-south-1'])
                           [(1 + hash(i * 16 + 7) % 3)::BIGINT] AS "cloud.region",
                       {_u(8)} < 0.5 AS "flag.new_checkout"
                FROM b
                """
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()


def median_seconds(work: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    work()  # warm-up: caches, first-use costs
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def naive(store: Store, baseline: str, candidate: str) -> dict[str, float]:
    """Pull both groups' rows into numpy, then SciPy: what compare avoids."""
    import numpy as np
    from scipy import stats

    assert store.con is not None
    out: dict[str, Any] = {}
    for side, expr in (("baseline", baseline), ("candidate", candidate)):
        f = parse_filter(expr)
        value = {"false": False, "true": True}[str(f.values[0])]
        rel = store.con.execute(
            f"SELECT duration_ms, error FROM {EVENTS} WHERE {quote_ident(f.field)} = ?",
            [value],
        ).fetchnumpy()
        out[side] = (np.asarray(rel["duration_ms"]), np.asarray(rel["error"]))
    (bd, be), (cd, ce) = out["baseline"], out["candidate"]
    mw = stats.mannwhitneyu(cd, bd, alternative="two-sided", method="asymptotic")
    table = [[ce.sum(), len(ce) - ce.sum()], [be.sum(), len(be) - be.sum()]]
    _, p_rate, _, _ = stats.chi2_contingency(table, correction=False)
    return {"p_duration": float(mw.pvalue), "p_rate": float(p_rate), "n": len(bd) + len(cd)}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) or abs(a - b) < 1e-300


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=EVENTS_DEFAULT)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the generated store here")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    folder = args.keep or tmp
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"store-{args.events}.duckdb"
    try:
        if not db.exists():
            start = time.perf_counter()
            generate(db, args.events)
            print(f"generated {args.events:,} events in {time.perf_counter() - start:.1f} s")
        figures: dict[str, Any] = {"events": args.events, "runs": args.runs, "cases": {}}
        ok = True
        with Store(db) as store:
            for name, (baseline, candidate, expected) in CASES.items():
                b, c = [parse_filter(baseline)], [parse_filter(candidate)]

                def verdict(explain: bool, b: Any = b, c: Any = c) -> dict[str, Any]:
                    return compare(store, b, c, [], TimeRange(), METRICS, explain=explain)

                t_verdict, runs_v, result = median_seconds(lambda: verdict(False), args.runs)
                t_explained, runs_e, explained = median_seconds(lambda: verdict(True), args.runs)
                t_naive, runs_n, ref = median_seconds(
                    lambda b=baseline, c=candidate: naive(store, b, c), args.runs
                )
                latency, errors = result["metrics"]
                agree = close(latency["p_value"], ref["p_duration"]) and close(
                    errors["p_value"], ref["p_rate"]
                )
                why = [
                    f["field"]
                    for m in explained["metrics"]
                    if m.get("why")
                    for f in m["why"]["fields"][:1]
                ]
                right = result["verdict"] == expected and (expected == "pass" or "db.shard" in why)
                ok = ok and agree and right
                print(
                    f"\n{name}: {baseline!r} ({result['baseline']['events']:,}) vs "
                    f"{candidate!r} ({result['candidate']['events']:,})"
                )
                print(
                    f"  verdict {result['verdict']} (expected {expected}), "
                    f"score {result['score']}; "
                    f"duration_ms {latency['class']} p={latency['p_value']:.3g}, "
                    f"rate(error) {errors['class']} p={errors['p_value']:.3g}"
                    + (f"; why: {', '.join(why)}" if why else "")
                )
                print(f"  p-values agree with SciPy on the pulled rows: {agree}")
                print(
                    f"  compare (verdict)        {t_verdict:7.3f} s  runs "
                    + " ".join(f"{t:.3f}" for t in runs_v)
                )
                print(
                    f"  compare (with why)       {t_explained:7.3f} s  runs "
                    + " ".join(f"{t:.3f}" for t in runs_e)
                )
                print(
                    f"  pull rows + SciPy        {t_naive:7.3f} s  runs "
                    + " ".join(f"{t:.3f}" for t in runs_n)
                )
                print(f"  ratio compare / naive    {t_verdict / t_naive:7.2f} x")
                figures["cases"][name] = {
                    "verdict": result["verdict"],
                    "expected": expected,
                    "agree_with_scipy": agree,
                    "compare_s": t_verdict,
                    "compare_with_why_s": t_explained,
                    "naive_s": t_naive,
                    "baseline_events": result["baseline"]["events"],
                    "candidate_events": result["candidate"]["events"],
                }
        print("\ntargets")
        for name, case in figures["cases"].items():
            passed = case["compare_s"] <= TARGET_S
            ok = ok and passed
            print(
                f"  {name}: compare {case['compare_s']:.3f} s over "
                f"{case['baseline_events'] + case['candidate_events']:,} events "
                f"(target <= {TARGET_S} s) {'PASS' if passed else 'MISS'}; "
                f"{case['compare_s'] / case['naive_s']:.2f} x pull+SciPy"
            )
        if args.json:
            print(json.dumps(figures))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
