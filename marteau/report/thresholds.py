"""Pass/fail thresholds on the report's figures, for CI.

A thresholds file is YAML: a bare list of expressions, or a map, or the
``thresholds:`` key of a ``.marteau.yml`` holding either::

    thresholds:
      scope: bench            # bench (default) | cycles | best | last
      global:
        - p95 < 0.5
        - error_rate < 1%
        - apdex >= 0.85
        - rps > 100
      pages:
        Login: [p95 < 0.8]

An expression is ``[family.]metric operator number[unit]``.  Metrics:
``min avg max p10 p50 (med) p90 p95 p99 p99.9`` (seconds; ``ms`` unit
allowed), ``error_rate`` (percent; ``1%`` and ``1`` both mean one
percent), ``apdex`` (score 0-1), ``rps``, ``max_rps``, ``spps``,
``max_spps``, ``stps``, ``count``, ``errors``.  The family is
``requests`` (default), ``pages`` (default for spps/max_spps) or
``tests`` (default for stps).

Scope (why a choice): a ramp of cycles is often meant to find where the
service breaks, so judging it cycle by cycle would always fail; CI runs
usually want one verdict on the whole run.  So by default (``bench``)
thresholds are checked on the **whole bench** (all cycles together, rates
over the recorded time); ``cycles`` requires **every** cycle to pass,
``best``/``last`` check FunkLoad's best cycle or the last cycle.
Per-page thresholds (``pages:``) are always checked on the whole bench,
over the requests whose description is the page name.

An open-model bench (``--rates``) adds the ``open`` family, figures per test
iteration (`marteau.report.open_model`): ``p50_latency`` ... ``p99.9_latency``
and ``max_latency`` (from the intended start, seconds), the same with
``_service`` (the iteration's own duration), ``dropped`` (percent of the
intended iterations, ``1%`` and ``1`` alike), ``achieved_rate`` and
``intended_rate`` (tests/s).  A limit may be relative to the intended rate of
what is checked: ``achieved_rate > 0.99 * intended``.  On a closed bench these
have no data, and fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marteau.errors import MarteauError
from marteau.report.stats import BenchStats

SCOPES = ("bench", "cycles", "best", "last")
DURATION_METRICS = {
    "min": "min",
    "avg": "avg",
    "max": "max",
    "p10": "p10",
    "p50": "p50",
    "med": "p50",
    "median": "p50",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
    "p99.9": "p99_9",
    "p99_9": "p99_9",
}
OTHER_METRICS = {
    "error_rate",
    "apdex",
    "rps",
    "max_rps",
    "spps",
    "max_spps",
    "stps",
    "count",
    "errors",
}
FAMILIES = ("requests", "pages", "tests", "open")
# the open model's figures: "<percentile>_latency" / "<percentile>_service", and these
_OPEN_FIGURES = {k: v for k, v in DURATION_METRICS.items() if v not in ("min", "avg")}
OPEN_METRICS = {
    **{
        f"{key}_{kind}": f"{kind}_{value}"
        for key, value in _OPEN_FIGURES.items()
        for kind in ("latency", "service")
    },
    "dropped": "dropped",
    "achieved_rate": "achieved_rate",
    "intended_rate": "intended_rate",
}
_FAMILY_OF = {"spps": "pages", "max_spps": "pages", "stps": "tests"}
_ALLOWED = {
    "requests": set(DURATION_METRICS.values())
    | {"error_rate", "apdex", "rps", "max_rps", "count", "errors"},
    "pages": set(DURATION_METRICS.values())
    | {"error_rate", "apdex", "spps", "max_spps", "count", "errors"},
    "tests": {"min", "avg", "max", "error_rate", "stps", "count", "errors"},
    "page": set(DURATION_METRICS.values()) | {"error_rate", "apdex", "rps", "count", "errors"},
    "open": set(OPEN_METRICS.values()),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*(?:\.9)?)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
    r"(?:\*\s*(?P<relative>intended)\s*)?(?P<unit>%|ms|s)?\s*$"
)


@dataclass
class Threshold:
    """One parsed expression."""

    expression: str
    family: str  # requests | pages | tests | page
    metric: str  # normalised: p95, p99_9, error_rate, ...
    operator: str
    limit: float
    page: str | None = None
    relative: bool = False  # the limit is a share of the intended rate (`0.99 * intended`)

    @property
    def name(self) -> str:
        return f"{self.family}.{self.metric}" if self.page is None else f"page.{self.metric}"


@dataclass
class ThresholdSet:
    source: str
    scope: str
    thresholds: list[Threshold]


def parse_expression(expression: Any, source: str, page: str | None = None) -> Threshold:
    """Parse ``p95 < 0.5``; MarteauError naming the file and the expression otherwise."""
    text = str(expression)

    def bad(why: str) -> MarteauError:
        where = f" (page {page!r})" if page is not None else ""
        return MarteauError(f"{source}: bad threshold {text!r}{where}: {why}")

    if not isinstance(expression, str):
        raise bad("expected a string like 'p95 < 0.5'")
    match = _EXPRESSION.match(expression)
    if not match:
        raise bad("expected '<metric> <op> <number>', e.g. 'p95 < 0.5' or 'error_rate < 1%'")
    name = match.group("metric").lower()
    family = None
    head, _, rest = name.partition(".")
    if head in FAMILIES and rest:
        family, name = head, rest
    if name in OPEN_METRICS and family in (None, "open") and page is None:
        family, metric = "open", OPEN_METRICS[name]
    elif name in DURATION_METRICS:
        metric = DURATION_METRICS[name]
    elif name in OTHER_METRICS:
        metric = name
    else:
        known = ", ".join(list(DURATION_METRICS) + sorted(OTHER_METRICS) + ["..._latency"])
        raise bad(f"unknown metric {name!r} (known: {known})")
    if page is not None:
        if family is not None:
            raise bad("per-page thresholds take no requests./pages./tests. prefix")
        family = "page"
    family = family or _FAMILY_OF.get(metric, "requests")
    if metric not in _ALLOWED[family]:
        raise bad(f"{metric} is not available for {family}")
    limit = float(match.group("value"))
    unit = match.group("unit")
    relative = bool(match.group("relative"))
    if relative and (metric not in ("achieved_rate", "intended_rate") or unit):
        raise bad("'* intended' only applies to achieved_rate, without a unit")
    if unit == "%" and metric not in ("error_rate", "dropped"):
        raise bad("'%' only applies to error_rate and dropped")
    durations = set(DURATION_METRICS.values()) | {
        m for m in OPEN_METRICS.values() if m.startswith(("latency_", "service_"))
    }
    if unit in ("ms", "s") and metric not in durations:
        raise bad(f"'{unit}' only applies to durations")
    if unit == "ms":
        limit /= 1000.0
    return Threshold(expression.strip(), family, metric, match.group("op"), limit, page, relative)


def parse_thresholds(data: Any, source: str) -> ThresholdSet:
    """Thresholds from loaded YAML: a list, a map, or a ``.marteau.yml`` with ``thresholds:``."""
    if isinstance(data, dict) and "thresholds" in data:
        data = data["thresholds"]
    scope = "bench"
    global_items: list[Any] = []
    pages: dict[str, Any] = {}
    if isinstance(data, list):
        global_items = data
    elif isinstance(data, dict):
        unknown = set(data) - {"scope", "global", "bench", "pages"}
        if unknown:
            raise MarteauError(
                f"{source}: unknown threshold key(s) {', '.join(sorted(map(str, unknown)))}"
                " (expected scope, global, pages)"
            )
        scope = str(data.get("scope", "bench"))
        global_items = data.get("global", data.get("bench")) or []
        pages = data.get("pages") or {}
    else:
        raise MarteauError(
            f"{source}: thresholds must be a list or a map, not {type(data).__name__}"
        )
    if scope not in SCOPES:
        raise MarteauError(
            f"{source}: thresholds scope {scope!r} is not one of {', '.join(SCOPES)}"
        )
    if not isinstance(global_items, list):
        raise MarteauError(f"{source}: 'global' thresholds must be a list of expressions")
    if not isinstance(pages, dict):
        raise MarteauError(f"{source}: 'pages' thresholds must map a page description to a list")
    out = [parse_expression(item, source) for item in global_items]
    for page, items in pages.items():
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list):
            raise MarteauError(
                f"{source}: thresholds of page {page!r} must be a list of expressions"
            )
        out += [parse_expression(item, source, page=str(page)) for item in items]
    if not out:
        raise MarteauError(f"{source}: no threshold found")
    return ThresholdSet(source, scope, out)


def load_thresholds(path: str | os.PathLike[str]) -> ThresholdSet:
    """Read a thresholds YAML file (see the module docstring)."""
    import yaml

    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read thresholds: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise MarteauError(f"{name}: invalid YAML: {exc}") from exc
    return parse_thresholds(data, name)


def _value(stats: Any, metric: str) -> float | None:
    if stats is None:
        return None
    if metric.startswith(("latency_", "service_")):
        kind, _, figure = metric.partition("_")
        return float(getattr(stats, kind)[figure])
    if metric in ("dropped", "achieved_rate", "intended_rate"):
        return float(stats.dropped_percent if metric == "dropped" else getattr(stats, metric))
    if metric in ("min", "avg", "max"):
        return float(getattr(stats, metric))
    if metric.startswith("p"):
        return float(stats.percentiles[metric])
    return float(
        {
            "error_rate": lambda: stats.error_percent,
            "apdex": lambda: stats.apdex.score,
            "rps": lambda: stats.rps,
            "max_rps": lambda: stats.max_rps,
            "spps": lambda: stats.spps,
            "max_spps": lambda: stats.max_spps,
            "stps": lambda: stats.stps,
            "count": lambda: stats.count,
            "errors": lambda: stats.error,
        }[metric]()
    )


def _targets(stats: BenchStats, threshold: Threshold, scope: str) -> list[tuple[int | None, Any]]:
    """(cycle, stats object) pairs the threshold is checked on."""
    if threshold.page is not None:
        for description in stats.descriptions:
            if description.description == threshold.page:
                return [(None, description)]
        return [(None, None)]
    attribute = threshold.family
    if attribute == "open":
        return _open_targets(stats, scope)
    if scope == "bench":
        overall = {
            "requests": stats.overall_requests,
            "pages": stats.overall_pages,
            "tests": stats.overall_tests,
        }
        return [(None, overall[attribute])]
    if scope == "cycles":
        return [(c.cycle, getattr(c, attribute)) for c in stats.cycles] or [(None, None)]
    cycle = stats.cycle(
        stats.best_cycle if scope == "best" else (stats.cycles[-1].cycle if stats.cycles else None)
    )
    return [(cycle.cycle if cycle else None, getattr(cycle, attribute) if cycle else None)]


def _open_targets(stats: BenchStats, scope: str) -> list[tuple[int | None, Any]]:
    """The open model's figures a threshold is checked on (none on a closed bench)."""
    if stats.open_overall is None:
        return [(None, None)]
    if scope == "bench":
        return [(None, stats.open_overall)]
    if scope == "cycles":
        return [(c.cycle, c) for c in stats.open_cycles]
    number = stats.best_cycle if scope == "best" else stats.open_cycles[-1].cycle
    found = [c for c in stats.open_cycles if c.cycle == number]
    return [(number, found[0] if found else None)]


def _shown(metric: str, value: float) -> str:
    if metric in ("error_rate", "dropped"):
        return f"{value:.2f}%"
    if metric in ("count", "errors", "max_rps", "max_spps"):
        return f"{value:.0f}"
    return f"{value:.3f}"


def evaluate(thresholds: ThresholdSet, stats: BenchStats) -> dict[str, Any]:
    """Check every threshold; the ``thresholds`` object of summary.json."""
    results = []
    for threshold in thresholds.thresholds:
        check = OPERATORS[threshold.operator]
        where = f"page {threshold.page!r}" if threshold.page is not None else threshold.family
        failures = []
        actual: float | None = None
        failing_cycle: int | None = None
        targets = _targets(stats, threshold, thresholds.scope)
        for cycle, target in targets:
            value = _value(target, threshold.metric)
            limit = threshold.limit
            if threshold.relative and target is not None:
                limit *= target.intended_rate
            label = where + (f", cycle {cycle}" if cycle is not None else "")
            if value is None:
                failures.append(f"{label}: no data")
                failing_cycle = failing_cycle if failing_cycle is not None else cycle
                continue
            if actual is None:
                actual = value
            if not check(value, limit):
                failures.append(f"{label}: {_shown(threshold.metric, value)}")
                if failing_cycle is None:
                    failing_cycle, actual = cycle, value
        passed = not failures
        if passed and len(targets) == 1:
            failing_cycle = targets[0][0]  # the one cycle checked (best/last scope)
        scope = (
            "whole bench"
            if thresholds.scope == "bench" or threshold.page
            else f"scope {thresholds.scope}"
        )
        if passed:
            message = f"{threshold.expression} ({where}, {scope}): passed"
            if actual is not None:
                message += f", actual {_shown(threshold.metric, actual)}"
        else:
            message = f"{threshold.expression} ({scope}) failed: " + "; ".join(failures)
        results.append(
            {
                "expression": threshold.expression,
                "page": threshold.page,
                "cycle": failing_cycle,
                "metric": threshold.name,
                "operator": threshold.operator,
                "limit": threshold.limit,
                "actual": actual,
                "passed": passed,
                "message": message,
            }
        )
    return {
        "source": thresholds.source,
        "scope": thresholds.scope,
        "passed": all(r["passed"] for r in results),
        "results": results,
    }
