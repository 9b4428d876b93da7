"""Canary verdicts: is the candidate group of events worse than the baseline, and why?

Kayenta's method (a test per metric, each metric classed High / Low / Pass / NoData, a
weighted score against pass and marginal thresholds), applied to individual events rather
than pre-aggregated series, and with the reason attached:

- a numeric field's distribution is compared with a **Mann-Whitney U** test (mid-ranks for
  ties, tie-corrected variance, continuity correction: ``scipy.stats.mannwhitneyu``'s
  asymptotic two-sided test). The ranks are computed in the database: one ``GROUP BY`` of
  the values and a running sum of weights, so two groups of a million events never travel
  to Python. The effect is the shift of p50 / p90 / p99 and the rank-biserial correlation.
- a rate (``error``, or any condition such as ``http.response.status_code >= 500``) is
  compared with a **two-proportion z-test** (pooled; equal to a 2x2 chi-square test
  without continuity correction). The effect is the difference of the rates.

Every count is weighted by ``sample_rate``: an event kept 1 in n stands for n in the ranks,
percentiles and rates. Sampling does not add information, though: for a distribution each
group is tested as its effective number of events, Kish's (Σw)² / Σw² (U and the tie sizes
scaled to match); a rate's variance is the weighted rate's own, Σw²(y - p0)² / (Σw)², right
also when sampling keeps every error and 1 in 20 of the rest. Unsampled data is tested
exactly as SciPy would; a group whose events were all kept 1 in k is tested as its stored
events are, not as k times as many; groups sampled at different rates are each counted for
what they are worth. A ``sample_rate`` below 1 counts as 1.

A metric is High (or Low) when its test is significant at ``alpha / m`` (Bonferroni over the
m metrics, so a neutral comparison fails at most ``alpha`` of the time) *and* its effect is
past the metric's tolerance; a significant but tiny effect is a Pass. Too few stored events
on either side is NoData, never a Pass. The score is the weighted share of metrics with data
that pass; the verdict is ``fail`` under the marginal threshold, ``nodata`` when a metric
lacks data (and nothing failed), ``pass`` at or above the pass threshold, else ``marginal``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..store.schema import EVENTS, quote_ident
from .breakdown import breakdown
from .compile import all_of_sql, where_sql
from .model import Filter, TimeRange
from .parse import QueryError, parse_filter, tokenize

if TYPE_CHECKING:
    from .engine import Store

DEFAULT_METRICS = ("duration_ms", "rate(error)")
PASS, HIGH, LOW, NODATA = "Pass", "High", "Low", "NoData"
WORSE = ("higher", "lower", "either")
DEFAULT_TOLERANCE = {"distribution": 0.0, "rate": 0.0}  # as Kayenta: significance decides
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))  # the shift is judged on these
QUANTILES = (("p10", 0.1), *PERCENTILES)
EXIT_CODES = {"pass": 0, "fail": 1, "marginal": 3, "nodata": 4}
MIN_GAP = 0.02  # a field explains a failure when one value differs by 2 points of share or more
WHY_ALPHA = 0.01  # ... and significantly so (Bonferroni over the fields compared)

_NEGATE = {
    "=": "!=",
    "!=": "=",
    ">": "<=",
    "<=": ">",
    "<": ">=",
    ">=": "<",
    "contains": "!contains",
    "!contains": "contains",
    "in": "not-in",
    "not-in": "in",
    "exists": "!exists",
    "!exists": "exists",
}


@dataclass(frozen=True)
class Metric:
    """One thing to compare: a numeric field's distribution, or the rate of a condition."""

    spec: str  # as written; the name in the output
    kind: str  # "distribution" | "rate"
    field: str  # the distribution's field, or the rate condition's field
    condition: Filter | None = None  # None for a rate of a bare field (resolved per store)
    worse: str = "higher"
    tolerance: float | None = None  # None: the kind's default
    weight: float = 1.0

    @property
    def effective_tolerance(self) -> float:
        return DEFAULT_TOLERANCE[self.kind] if self.tolerance is None else self.tolerance


def parse_metric(text: str) -> Metric:
    """``FIELD`` or ``rate(CONDITION)``, then options ``worse=higher|lower|either``,
    ``tolerance=5%`` (a distribution's shift; a rate's difference in points) and ``weight=2``.

        duration_ms
        db.rows worse=lower tolerance=10%
        rate(error) weight=2
        rate(http.response.status_code >= 500) tolerance=0.5%
    """
    stripped = text.strip()
    if not stripped:
        raise QueryError("empty metric: write FIELD or rate(CONDITION), for example duration_ms")
    opening = re.match(r"rate\s*\(", stripped, re.IGNORECASE)
    if opening:
        close = _closing_paren(stripped, opening.end() - 1)
        if close is None:
            raise QueryError("unclosed '(' in rate(…)", text, text.index("("))
        inner, options = stripped[opening.end() : close], stripped[close + 1 :]
        name, condition = _rate_condition(inner)
        metric = Metric(f"rate({inner.strip()})", "rate", name, condition)
        offset = text.index(stripped) + close + 1
    else:
        tokens = tokenize(stripped)
        first = tokens[0]
        if first.kind not in ("word", "ident", "str") or "=" in first.text:
            raise QueryError("expected a numeric field or rate(CONDITION)", text, 0)
        metric = Metric(first.text, "distribution", first.text)
        options = stripped[first.end :]
        offset = text.index(stripped) + first.end
    return _options(metric, options, text, offset)


def _closing_paren(text: str, start: int) -> int | None:
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _rate_condition(inner: str) -> tuple[str, Filter | None]:
    tokens = tokenize(inner)
    if len(tokens) == 1 and tokens[0].kind in ("word", "ident", "str"):
        return tokens[0].text, None  # a bare field: true (boolean) or present (others)
    condition = parse_filter(inner)
    return condition.field, condition


def _options(metric: Metric, text: str, whole: str, offset: int) -> Metric:
    for token in text.split():
        at = whole.find(token, offset)
        key, sep, value = token.partition("=")
        key = key.lower()
        if key not in ("worse", "tolerance", "weight"):
            hint = "use worse=, tolerance= or weight="
            if not sep or token[0] in "<>!=":
                hint = f"a condition goes in rate(…), for example rate({metric.field} > 1000)"
            raise QueryError(f"unknown metric option {token!r}: {hint}", whole, at, len(token))
        try:
            if not sep or not value:
                raise ValueError
            if key == "worse":
                if value.lower() not in WORSE:
                    raise ValueError
                metric = replace(metric, worse=value.lower())
            elif key == "tolerance":
                number = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(%?)", value)
                if number is None:
                    raise ValueError
                fraction = float(number[1]) / (100 if number[2] else 1)
                if not 0 <= fraction < (1 if metric.kind == "rate" else math.inf):
                    raise ValueError
                metric = replace(metric, tolerance=fraction)
            elif key == "weight":
                weight = float(value)
                if not weight > 0 or not math.isfinite(weight):
                    raise ValueError
                metric = replace(metric, weight=weight)
        except ValueError:
            hint = {
                "worse": "worse=higher, worse=lower or worse=either",
                "tolerance": "tolerance=5% (a share) or tolerance=0.05",
                "weight": "a positive number, for example weight=2",
            }[key]
            raise QueryError(
                f"bad metric option {token!r}: {hint}", whole, at, len(token)
            ) from None
        offset = at + len(token)
    return metric


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05
    pass_score: float = 95.0
    marginal_score: float = 75.0
    min_events: int = 50


def compare(
    store: Store,
    baseline: list[Filter],
    candidate: list[Filter],
    filters: list[Filter],
    time: TimeRange,
    metrics: list[Metric],
    thresholds: Thresholds = Thresholds(),
    *,
    explain: bool = True,
) -> dict[str, Any]:
    """The verdict: per metric its class, effect and test; overall the score and verdict;
    for each failing metric, what differs about the candidate's bad events."""
    if not baseline or not candidate:
        raise QueryError("compare needs a --baseline and a --candidate expression")
    if not metrics:
        raise QueryError("compare needs at least one --metric")
    groups = _Groups(store, baseline, candidate, filters, time)
    sizes, per_metric = groups.scan(metrics)
    alpha = thresholds.alpha / len(metrics)
    rows = []
    for metric, sides in zip(metrics, per_metric, strict=True):
        if metric.kind == "distribution":
            row = _distribution(groups, metric, sides, alpha, thresholds.min_events)
        else:
            row = _rate(groups, metric, sides, alpha, thresholds.min_events)
        row["fails"] = _fails(metric, row["class"])
        if row["fails"] and explain:
            row["why"] = _why(groups, metric, row)
        rows.append(row)
    score, verdict = _verdict(metrics, rows, thresholds)
    return {
        "verdict": verdict,
        "exit_code": EXIT_CODES[verdict],
        "score": score,
        "pass_score": thresholds.pass_score,
        "marginal_score": thresholds.marginal_score,
        "alpha": thresholds.alpha,
        "baseline": {"where": [str(f) for f in baseline], **sizes["baseline"]},
        "candidate": {"where": [str(f) for f in candidate], **sizes["candidate"]},
        "metrics": rows,
    }


class _Groups:
    """The two groups as SQL: ``{events}`` with columns ``__c`` (in candidate) and ``__w``."""

    def __init__(
        self,
        store: Store,
        baseline: list[Filter],
        candidate: list[Filter],
        filters: list[Filter],
        time: TimeRange,
    ) -> None:
        self.store = store
        self.baseline, self.candidate, self.filters, self.time = baseline, candidate, filters, time
        schema = store.schema
        self.params: list[Any] = []
        cand = all_of_sql(candidate, schema, self.params)
        where = where_sql(filters, time, schema, store.now, self.params)
        either = f"({all_of_sql(candidate, schema, self.params)} OR "
        either += f"{all_of_sql(baseline, schema, self.params)})"
        self.sql = (
            f"(SELECT *, {cand} AS __c, "
            f"greatest(coalesce(sample_rate, 1), 1)::DOUBLE AS __w "
            f"FROM {EVENTS} WHERE {where} AND {either})"
        )

    def numeric(self, metric: Metric) -> str:
        schema = self.store.schema
        column = schema.resolve(metric.field)
        if not schema.is_numeric(column):
            raise QueryError(
                f"metric {metric.spec!r} compares a distribution and needs a numeric field; "
                f"{column!r} holds {schema.type_of(column)} (for a rate write rate({column}))"
            )
        return column

    def scan(
        self, metrics: list[Metric]
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, list[float]]]]:
        """One pass over both groups: their sizes (refusing groups that overlap) and, per
        metric and side, [stored events, Σw, Σw², Σw of bad events, Σw² of bad events] over
        the events the metric judges (those with the field, for a distribution; all, for a
        rate)."""
        params: list[Any] = []
        both = all_of_sql([*self.candidate, *self.baseline], self.store.schema, params)
        parts = [f"count(*) FILTER (WHERE {both})"]
        for metric in metrics:
            judged = "true"
            if metric.kind == "distribution":
                judged = f"{quote_ident(self.numeric(metric))} IS NOT NULL"
            for side in ("__c", "NOT __c"):
                bad = "false"
                if metric.kind == "rate":
                    condition = _condition(metric, self.store.schema)
                    bad = all_of_sql([condition], self.store.schema, params)
                parts += [
                    f"count(*) FILTER (WHERE {side} AND {judged})",
                    f"coalesce(sum(__w) FILTER (WHERE {side} AND {judged}), 0)",
                    f"coalesce(sum(__w * __w) FILTER (WHERE {side} AND {judged}), 0)",
                    f"coalesce(sum(__w) FILTER (WHERE {side} AND {bad}), 0)",
                ]
                if metric.kind == "rate":  # the same condition, with its own parameters
                    bad = all_of_sql([condition], self.store.schema, params)
                parts.append(f"coalesce(sum(__w * __w) FILTER (WHERE {side} AND {bad}), 0)")
        parts += [
            "count(*) FILTER (WHERE __c)",
            "count(*) FILTER (WHERE NOT __c)",
            "coalesce(sum(__w) FILTER (WHERE __c), 0)",
            "coalesce(sum(__w) FILTER (WHERE NOT __c), 0)",
        ]
        row = self.store._rows(
            f"SELECT {', '.join(parts)} FROM {self.sql}", [*params, *self.params]
        )[0]
        overlap, values = int(row[0]), [float(x or 0) for x in row[1:]]
        if overlap:
            raise QueryError(
                f"{overlap:,} events match both --baseline and --candidate: the groups must not "
                "overlap (add a condition that tells them apart)"
            )
        per_metric = [
            {"candidate": values[10 * i : 10 * i + 5], "baseline": values[10 * i + 5 : 10 * i + 10]}
            for i in range(len(metrics))
        ]
        n_c, n_b, w_c, w_b = values[10 * len(metrics) :]
        sizes = {
            "candidate": {"events": int(n_c), "weighted": w_c},
            "baseline": {"events": int(n_b), "weighted": w_b},
        }
        return sizes, per_metric


def _distribution(
    groups: _Groups,
    metric: Metric,
    sides: dict[str, list[float]],
    alpha: float,
    min_events: int,
) -> dict[str, Any]:
    column = groups.numeric(metric)
    col = quote_ident(column)
    (n_c, w_c, q_c, _, _), (n_b, w_b, q_b, _, _) = sides["candidate"], sides["baseline"]
    # Each side's weights scaled to its effective size (n_eff / Σw = Σw / Σw²): the test
    # counts a side as n_eff observations, the ties in the same units.
    a, b = (w_c / q_c if q_c else 0.0), (w_b / q_b if q_b else 0.0)
    params: list[Any] = [a, b] * 3  # the tie term's three factors
    quantiles = []
    for side, total in (("c", w_c), ("b", w_b)):
        for _, p in QUANTILES:
            quantiles.append(f"min(v) FILTER (WHERE cum_{side} >= ?)")
            params.append(p * total)
    # U counts, over every (candidate, baseline) pair of events, 1 when the candidate's value
    # is larger and 1/2 on a tie, each pair weighted w_c * w_b: Σ over the candidate's
    # values of w_c * (baseline weight below + half the baseline weight equal). The running
    # sums per side give it and the (discrete, weighted) percentiles.
    sql = f"""
        WITH g AS (
            SELECT {col}::DOUBLE AS v,
                   coalesce(sum(__w) FILTER (WHERE __c), 0) AS wc,
                   coalesce(sum(__w) FILTER (WHERE NOT __c), 0) AS wb
            FROM {groups.sql} WHERE {col} IS NOT NULL GROUP BY 1
        ), r AS (
            SELECT v, wc, wb, sum(wc) OVER w AS cum_c, sum(wb) OVER w AS cum_b
            FROM g WINDOW w AS (ORDER BY v ROWS UNBOUNDED PRECEDING)
        )
        SELECT sum(wc * (cum_b - wb / 2)),
               sum((? * wc + ? * wb) * (? * wc + ? * wb) * (? * wc + ? * wb)),
               {", ".join(quantiles)}
        FROM r
    """
    row = groups.store._rows(sql, [*groups.params, *params])[0]
    u, cubes = float(row[0] or 0), float(row[1] or 0)
    qs = [None if x is None else float(x) for x in row[2:]]
    k = len(QUANTILES)
    cand: dict[str, Any] = {"events": int(n_c), "weighted": w_c}
    base: dict[str, Any] = {"events": int(n_b), "weighted": w_b}
    for i, (name, _) in enumerate(QUANTILES):
        cand[name] = qs[i] if w_c else None
        base[name] = qs[k + i] if w_b else None
    out = _row(metric, alpha, base, cand, field=column)
    if _too_few(out, min_events):
        return out
    m_c, m_b = w_c * a, w_b * b  # effective sizes
    test = {
        "u": u,
        **mann_whitney(m_c, m_b, u * a * b, cubes - (m_c + m_b)),
        "rank_biserial": 2 * u / (w_c * w_b) - 1,
    }
    shifts = {name: _relative(cand[name], base[name]) for name, _ in PERCENTILES}
    finite = [s for s in shifts.values() if s is not None]
    tol = metric.effective_tolerance
    r = test["rank_biserial"]
    up = r > 0 and bool(finite) and max(finite) > tol
    down = r < 0 and bool(finite) and min(finite) < -tol
    return {**out, **test, "shift": shifts, "class": _classify(test["p_value"], alpha, up, down)}


def _rate(
    groups: _Groups,
    metric: Metric,
    sides: dict[str, list[float]],
    alpha: float,
    min_events: int,
) -> dict[str, Any]:
    condition = _condition(metric, groups.store.schema)
    (n_c, w_c, q_c, x_c, qx_c), (n_b, w_b, q_b, x_b, qx_b) = sides["candidate"], sides["baseline"]
    cand = {"events": int(n_c), "weighted": w_c, "rate": x_c / w_c if w_c else None}
    base = {"events": int(n_b), "weighted": w_b, "rate": x_b / w_b if w_b else None}
    out = _row(metric, alpha, base, cand, condition=str(condition))
    if _too_few(out, min_events):
        return out
    test = rate_test((n_c, w_c, q_c, x_c, qx_c), (n_b, w_b, q_b, x_b, qx_b))
    tol = metric.effective_tolerance
    up, down = test["difference"] > tol, test["difference"] < -tol
    return {**out, **test, "class": _classify(test["p_value"], alpha, up, down)}


def _row(
    metric: Metric, alpha: float, base: dict[str, Any], cand: dict[str, Any], **what: str
) -> dict[str, Any]:
    return {
        "metric": metric.spec,
        "kind": metric.kind,
        **what,
        "worse": metric.worse,
        "tolerance": metric.effective_tolerance,
        "weight": metric.weight,
        "alpha": alpha,
        "baseline": base,
        "candidate": cand,
    }


def _too_few(row: dict[str, Any], min_events: int) -> bool:
    """Mark *row* NoData when either side has fewer than *min_events* stored events."""
    n_c, n_b = row["candidate"]["events"], row["baseline"]["events"]
    if n_c >= min_events and n_b >= min_events:
        return False
    row["class"] = NODATA
    row["reason"] = (
        f"too few events to judge: candidate {n_c:,}, baseline {n_b:,} "
        f"(at least {min_events:,} each)"
    )
    return True


def _classify(p_value: float, alpha: float, up: bool, down: bool) -> str:
    """High / Low when the test is significant and the effect past the tolerance that way."""
    if p_value < alpha and up:
        return HIGH
    if p_value < alpha and down:
        return LOW
    return PASS


def _condition(metric: Metric, schema: Any) -> Filter:
    if metric.condition is not None:
        return metric.condition
    column = schema.resolve(metric.field)
    if schema.type_of(column) == "BOOLEAN":
        return Filter(column, "=", ("true",))
    return Filter(column, "exists")


def _relative(new: float | None, old: float | None) -> float | None:
    if new is None or old is None:
        return None
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def mann_whitney(n1: float, n2: float, u1: float, ties: float) -> dict[str, float]:
    """The two-sided Mann-Whitney U test of group 1's U, as SciPy's asymptotic test
    (tie-corrected variance, continuity correction); ``ties`` is Σ(t³ - t) over tied groups.
    Sizes, U and tie sizes may be fractional: effective, for weighted events. Returns ``z``
    (signed: > 0 when group 1 tends to be larger) and ``p_value``."""
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return {"z": 0.0, "p_value": 1.0}
    u = max(u1, n1 * n2 - u1)
    z = max((u - mean - 0.5) / math.sqrt(var), 0.0)
    return {"z": math.copysign(z, u1 - mean), "p_value": min(1.0, _p_two_sided(z))}


def two_proportions(x1: float, n1: float, x2: float, n2: float) -> dict[str, float]:
    """The pooled two-proportion z-test, two-sided; ``difference`` is rate 1 - rate 2."""
    return rate_test((n1, n1, n1, x1, x1), (n2, n2, n2, x2, x2))


def rate_test(group1: tuple[float, ...], group2: tuple[float, ...]) -> dict[str, float]:
    """A two-sided z-test of two weighted rates; each group is (stored events n, Σw, Σw²,
    Σw·y, Σw²·y) for y = 1 on the events that meet the condition.

    Under the null hypothesis both rates are the pooled p0. A group whose events all have
    the same weight gets the binomial variance p0(1 - p0) / n of its stored events (so
    unsampled data is the classic pooled test, a 2x2 chi-square); any other group the
    variance of a weighted rate, Σw²(y - p0)² / (Σw)², which stays right when the weights
    depend on the outcome (every error kept, 1 in 20 of the rest).
    """
    (n1, w1, q1, x1, qx1), (n2, w2, q2, x2, qx2) = group1, group2
    if not w1 or not w2:
        return {"difference": 0.0, "z": 0.0, "p_value": 1.0}
    p1, p2 = x1 / w1, x2 / w2
    p0 = (x1 + x2) / (w1 + w2)

    def variance(n: float, w: float, q: float, qx: float) -> float:
        if math.isclose(q * n, w * w, rel_tol=1e-12):
            return p0 * (1 - p0) / n
        return (qx * (1 - 2 * p0) + p0 * p0 * q) / (w * w)  # y is 0 or 1

    var = variance(n1, w1, q1, qx1) + variance(n2, w2, q2, qx2)
    if var <= 0:
        return {"difference": p1 - p2, "z": 0.0, "p_value": 1.0}
    z = (p1 - p2) / math.sqrt(var)
    return {"difference": p1 - p2, "z": z, "p_value": _p_two_sided(z)}


def _fails(metric: Metric, klass: str) -> bool:
    if klass == HIGH:
        return metric.worse in ("higher", "either")
    if klass == LOW:
        return metric.worse in ("lower", "either")
    return False


def _verdict(
    metrics: list[Metric], rows: list[dict[str, Any]], t: Thresholds
) -> tuple[float | None, str]:
    """The score over the metrics with data; ``fail`` under the marginal threshold; else
    ``nodata`` when a metric lacks data and none failed (more traffic could still make it a
    pass); else ``pass`` or ``marginal`` (a failing metric never reads as "not enough
    data")."""
    judged = [(m, r) for m, r in zip(metrics, rows, strict=True) if r["class"] != NODATA]
    total = sum(m.weight for m, _ in judged)
    score = 100.0 * sum(m.weight for m, r in judged if not r["fails"]) / total if total else None
    shown = None if score is None else round(score, 1)
    if score is not None and score < t.marginal_score:
        return shown, "fail"
    if len(judged) < len(rows) and not any(r["fails"] for _, r in judged):
        return shown, "nodata"
    assert score is not None
    return shown, "pass" if score >= t.pass_score else "marginal"


def _why(groups: _Groups, metric: Metric, row: dict[str, Any]) -> dict[str, Any] | None:
    """What is different about the candidate's bad events, against the baseline's bad ones:
    what makes events bad in both groups (a slow route) cancels out, what the canary changed
    stands out. When the baseline has no bad event, against all of its events. A field is
    named only when its leading value's share differs significantly between the two."""
    high = row["class"] == HIGH
    if metric.kind == "distribution":
        edge = row["baseline"]["p90" if high else "p10"]
        if edge is None:
            return None
        bad = Filter(row["field"], ">" if high else "<", (repr(float(edge)),))
        described = (
            f"{row['field']} {bad.op} {_num(edge)} (the baseline's {'p90' if high else 'p10'})"
        )
    else:
        condition = _condition(metric, groups.store.schema)
        if not high:
            op = _NEGATE.get(condition.op)
            if op is None:
                return None
            condition = Filter(condition.field, op, condition.values)
        bad = condition
        described = str(condition)
    params: list[Any] = []
    is_bad = all_of_sql([bad], groups.store.schema, params)
    ((n_sel, n_base_bad, n_base),) = groups.store._rows(
        f"SELECT count(*) FILTER (WHERE __c AND {is_bad}), "
        f"count(*) FILTER (WHERE NOT __c AND {is_bad}), count(*) FILTER (WHERE NOT __c) "
        f"FROM {groups.sql}",
        [*params, *params, *groups.params],
    )
    if not n_sel:
        return None  # the candidate has no bad event (a Low class on a rare condition)
    against, baseline = "the baseline's events with the same condition", [*groups.baseline, bad]
    if not n_base_bad:
        against, baseline = "all the baseline's events (none has it)", groups.baseline
        n_base_bad = n_base
    fields = breakdown(
        groups.store,
        [*groups.candidate, bad],
        groups.filters,
        groups.time,
        baseline=baseline,
        top_values=3,
    )
    candidates = [f for f in fields if not f["in_selection"] and not f.get("near_unique")]
    level = WHY_ALPHA / max(1, len(candidates))
    named = [
        f
        for f in candidates
        if f["score"] >= MIN_GAP
        and f["values"]
        and _share_p(f["values"][0], n_sel, n_base_bad) < level
    ]
    return {"bad": described, "against": against, "fields": named[:5]}


def _share_p(value: dict[str, Any], n1: int, n2: int) -> float:
    """Two-sided p-value that a value's share differs between the two sides (stored events)."""
    s1, s2 = value["selection_pct"] / 100, value["baseline_pct"] / 100
    return two_proportions(s1 * n1, n1, s2 * n2, n2)["p_value"]


def _num(x: float) -> str:
    return f"{x:.6g}"
