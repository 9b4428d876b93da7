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
percentiles and rates. Sampling does not add information, though, so the test statistics
use Kish's effective sample size: the weighted counts, U and tie sizes are scaled down by
the design effect d = Σw / n_eff, with n_eff = (Σw)² / Σw² per group. Unsampled data is
tested exactly as SciPy would; data where every event was kept 1 in k is tested as its
stored events are, not as k times as many.

A metric is High (or Low) when its test is significant at ``alpha / m`` (Bonferroni over the
m metrics, so a neutral comparison fails at most ``alpha`` of the time) *and* its effect is
past the metric's tolerance; a significant but tiny effect is a Pass. Too few stored events
on either side is NoData, never a Pass. The score is the weighted share of metrics with data
that pass; the verdict is ``fail`` under the marginal threshold, ``nodata`` when a metric
lacks data (and nothing failed), ``pass`` at or above the pass threshold, else ``marginal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..store.schema import EVENTS, quote_ident
from .breakdown import breakdown
from .compile import filter_sql, where_sql
from .model import Filter, TimeRange
from .parse import QueryError, parse_filter, tokenize

if TYPE_CHECKING:
    from .engine import Store

DEFAULT_METRICS = ("duration_ms", "rate(error)")
PASS, HIGH, LOW, NODATA = "Pass", "High", "Low", "NoData"
WORSE = ("higher", "lower", "either")
DEFAULT_TOLERANCE = {"distribution": 0.0, "rate": 0.0}  # as Kayenta: significance decides
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
EXIT_CODES = {"pass": 0, "fail": 1, "marginal": 3, "nodata": 4}
MIN_GAP = 0.02  # a field explains a failure when one value differs by 2 points of share or more

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
    if stripped.lower().startswith("rate("):
        close = _closing_paren(stripped, 4)
        if close is None:
            raise QueryError("unclosed '(' in rate(…)", text, text.index("("))
        inner, options = stripped[5:close], stripped[close + 1 :]
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
            raise QueryError(
                f"unknown metric option {key!r}: use worse=, tolerance= or weight=",
                whole,
                at,
                len(token),
            )
        try:
            if not sep or not value:
                raise ValueError
            if key == "worse":
                if value.lower() not in WORSE:
                    raise ValueError
                metric = replace(metric, worse=value.lower())
            elif key == "tolerance":
                number = float(value.rstrip("%"))
                fraction = number / 100 if value.endswith("%") else number
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
        cand = self._all(candidate, self.params)
        where_params: list[Any] = []
        where = where_sql(filters, time, schema, store.now, where_params)
        self.params += where_params
        either = f"(({self._all(candidate, self.params)}) OR ({self._all(baseline, self.params)}))"
        self.sql = (
            f"(SELECT *, coalesce(({cand}), false) AS __c, "
            f"coalesce(sample_rate, 1)::DOUBLE AS __w FROM {EVENTS} WHERE {where} AND {either})"
        )

    def _all(self, filters: list[Filter], params: list[Any]) -> str:
        return " AND ".join(
            f"coalesce(({filter_sql(f, self.store.schema, params)}), false)" for f in filters
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
        metric and side, [stored events, Σw, Σw², Σw of bad events] over the events the
        metric judges (those with the field, for a distribution; all, for a rate)."""
        params: list[Any] = []
        both = " AND ".join(
            f"({self._all(part, params)})" for part in (self.candidate, self.baseline)
        )
        parts = [f"count(*) FILTER (WHERE {both})"]
        for metric in metrics:
            judged = "true"
            if metric.kind == "distribution":
                judged = f"{quote_ident(self.numeric(metric))} IS NOT NULL"
            for side in ("__c", "NOT __c"):
                bad = "false"
                if metric.kind == "rate":
                    condition = _condition(metric, self.store.schema)
                    bad = f"coalesce(({filter_sql(condition, self.store.schema, params)}), false)"
                parts += [
                    f"count(*) FILTER (WHERE {side} AND {judged})",
                    f"coalesce(sum(__w) FILTER (WHERE {side} AND {judged}), 0)",
                    f"coalesce(sum(__w * __w) FILTER (WHERE {side} AND {judged}), 0)",
                    f"coalesce(sum(__w) FILTER (WHERE {side} AND {bad}), 0)",
                ]
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
            {"candidate": values[8 * i : 8 * i + 4], "baseline": values[8 * i + 4 : 8 * i + 8]}
            for i in range(len(metrics))
        ]
        n_c, n_b, w_c, w_b = values[8 * len(metrics) :]
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
    (n_c, w_c, q_c, _), (n_b, w_b, q_b, _) = sides["candidate"], sides["baseline"]
    params: list[Any] = []
    quantiles = []
    for side, total in (("c", w_c), ("b", w_b)):
        for _, p in PERCENTILES:
            quantiles.append(f"min(v) FILTER (WHERE cum_{side} >= ?)")
            params.append(p * total)
    # Mid-ranks of weighted values: a value's rank is the weight of all smaller values plus
    # (its own weight + 1) / 2, the average rank of its ties as if each event were w events.
    # The running sums per side give the ranks and the (discrete, weighted) percentiles.
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
        SELECT sum(wc * (cum_c + cum_b - wc - wb + (wc + wb + 1) / 2)),
               sum((wc + wb) * (wc + wb) * (wc + wb) - (wc + wb)),
               {", ".join(quantiles)}
        FROM r
    """
    row = groups.store._rows(sql, [*groups.params, *params])[0]
    rank_sum, ties = float(row[0] or 0), float(row[1] or 0)
    qs = [None if x is None else float(x) for x in row[2:]]
    k = len(PERCENTILES)
    cand: dict[str, Any] = {"events": int(n_c), "weighted": w_c}
    base: dict[str, Any] = {"events": int(n_b), "weighted": w_b}
    for i, (name, _) in enumerate(PERCENTILES):
        cand[name], base[name] = qs[i], qs[k + i]
    out = _row(metric, alpha, base, cand, field=column)
    if _too_few(out, min_events):
        return out
    test = mann_whitney(w_c, w_b, rank_sum, ties, _design_effect(w_c, w_b, q_c, q_b))
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
    (n_c, w_c, q_c, x_c), (n_b, w_b, q_b, x_b) = sides["candidate"], sides["baseline"]
    cand = {"events": int(n_c), "weighted": w_c, "rate": x_c / w_c if w_c else None}
    base = {"events": int(n_b), "weighted": w_b, "rate": x_b / w_b if w_b else None}
    out = _row(metric, alpha, base, cand, condition=str(condition))
    if _too_few(out, min_events):
        return out
    test = two_proportions(x_c, w_c, x_b, w_b, _design_effect(w_c, w_b, q_c, q_b))
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


def _design_effect(w_c: float, w_b: float, q_c: float, q_b: float) -> float:
    """Σw / n_eff over both groups (1 when nothing was sampled): how much weighting inflates
    the apparent number of observations."""
    n_eff = (w_c * w_c / q_c if q_c else 0.0) + (w_b * w_b / q_b if q_b else 0.0)
    return max(1.0, (w_c + w_b) / n_eff) if n_eff else 1.0


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def mann_whitney(
    n1: float, n2: float, rank_sum_1: float, ties: float, design_effect: float = 1.0
) -> dict[str, float]:
    """The two-sided Mann-Whitney U test from group 1's rank sum, as SciPy's asymptotic test
    (tie-corrected variance, continuity correction); ``ties`` is Σ(t³ - t) over tied groups.
    ``u`` is group 1's U; ``rank_biserial`` > 0 when group 1 tends to be larger.

    With a *design_effect* d > 1 (weighted events), the test runs on the effective sizes:
    n / d events per group, U / d² and tie groups t / d, which is exactly the test of the
    stored events when every event has the same weight.
    """
    u1 = rank_sum_1 - n1 * (n1 + 1) / 2
    r = 2 * u1 / (n1 * n2) - 1 if n1 and n2 else 0.0
    d = design_effect
    n = (n1 + n2) / d
    n1, n2, u1_eff = n1 / d, n2 / d, u1 / (d * d)
    ties = (ties + (n1 + n2) * d) / d**3 - n  # Σt³ = ties + Σt, then each t scaled by 1/d
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return {"u": u1, "z": 0.0, "p_value": 1.0, "rank_biserial": r}
    u = max(u1_eff, n1 * n2 - u1_eff)
    z = max((u - mean - 0.5) / math.sqrt(var), 0.0)
    return {
        "u": u1,
        "z": math.copysign(z, u1_eff - mean),
        "p_value": min(1.0, _p_two_sided(z)),
        "rank_biserial": r,
    }


def two_proportions(
    x1: float, n1: float, x2: float, n2: float, design_effect: float = 1.0
) -> dict[str, float]:
    """The pooled two-proportion z-test, two-sided; ``difference`` is rate 1 - rate 2."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2) * design_effect
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
    judged = [(m, r) for m, r in zip(metrics, rows, strict=True) if r["class"] != NODATA]
    total = sum(m.weight for m, _ in judged)
    score = (
        round(100.0 * sum(m.weight for m, r in judged if not r["fails"]) / total, 1)
        if total
        else None
    )
    if score is not None and score < t.marginal_score:
        return score, "fail"
    if len(judged) < len(rows):
        return score, "nodata"
    assert score is not None
    return score, "pass" if score >= t.pass_score else "marginal"


def _why(groups: _Groups, metric: Metric, row: dict[str, Any]) -> dict[str, Any] | None:
    """What is different about the candidate's bad events, against the baseline's bad ones:
    what makes events bad in both groups (a slow route) cancels out, what the canary changed
    stands out. When the baseline has no bad event, against all of its events."""
    high = row["class"] == HIGH
    against = "the baseline's events with the same condition"
    if metric.kind == "distribution":
        edge = row["baseline"]["p90"] if high else _lower_decile(groups, row["field"])
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
    baseline = [*groups.baseline, bad]
    if metric.kind == "rate" and row["baseline"]["rate"] == (0.0 if high else 1.0):
        baseline, against = groups.baseline, "all the baseline's events (none has it)"
    try:
        fields = breakdown(
            groups.store,
            [*groups.candidate, bad],
            groups.filters,
            groups.time,
            baseline=baseline,
            top_values=3,
        )
    except QueryError:
        return None  # the candidate has no bad event (a Low class on a rare condition)
    ranked = [
        f
        for f in fields
        if not f["in_selection"] and not f.get("near_unique") and f["score"] >= MIN_GAP
    ]
    return {"bad": described, "against": against, "fields": ranked[:5]}


def _lower_decile(groups: _Groups, column: str) -> float | None:
    col = quote_ident(column)
    ((value,),) = groups.store._rows(
        f"SELECT quantile_disc({col}, 0.1) FILTER (WHERE NOT __c) FROM {groups.sql}",
        groups.params,
    )
    return None if value is None else float(value)


def _num(x: float) -> str:
    return f"{x:.6g}"
