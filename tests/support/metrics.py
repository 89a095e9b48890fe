"""Prometheus expositions read back (sample by sample), and the metric names the
Grafana dashboard in docs/ reads: what the metrics tests compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.commands import REPO

DASHBOARD = REPO / "docs" / "grafana-marteau.json"


OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


# PromQL's own words: functions, aggregations, keywords (what is not a metric name)
PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "rate", "irate", "increase", "delta", "deriv",
    "topk", "bottomk", "histogram_quantile", "label_values", "clamp_min", "clamp_max",
    "offset", "bool", "time", "vector", "scalar", "abs", "round", "max_over_time",
    "min_over_time", "avg_over_time", "sum_over_time", "last_over_time", "sort", "sort_desc",
}  # fmt: skip


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str, *, openmetrics: bool = False) -> Samples:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parse(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    """The dashboard's PromQL expressions and variable queries."""
    dashboard = json.loads(path.read_text())
    expressions = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "datasource":  # a data source variable: no PromQL
                return
            for key, item in node.items():
                if key in ("expr", "query", "definition") and isinstance(item, str):
                    expressions.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    assert expressions, f"{path}: no PromQL expression"
    return expressions


def dashboard_metrics(path: Path = DASHBOARD) -> set[str]:
    """The metric names the dashboard's PromQL expressions (and variable queries) read."""
    names = set()
    for expression in dashboard_expressions(path):
        text = re.sub(r'"[^"]*"', "", expression)  # label values
        text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)  # selectors, ranges
        text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
        text = re.sub(r"\$\w+|\$\{[^}]*\}", "", text)  # Grafana variables
        text = re.sub(r"label_values\(([^,)]*),[^)]*\)", r"\1", text)  # (metric, label)
        for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
            if word not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", word):
                names.add(word)
    return names


def exported_names(found: Samples) -> set[str]:
    return {name for name, _ in found}
