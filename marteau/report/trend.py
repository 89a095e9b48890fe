"""``marteau report --trend DIR...``: how a bench evolves over runs (FUNKLOAD.md §5.6).

Each input is a report directory, Marteau's or FunkLoad's, read by
`marteau.report.diff.read_report` (``summary.json``, else the tables and
the ``* Launched:``/``* Cycles of concurrent users:`` lines of
``index.rst``, plus an optional ``funkload.metadata`` whose ``label`` names
the bench on the charts).  Benches are shown in the order given.

The output directory is ``trend-report`` under ``-o`` (or exactly ``-r``):
``index.html``, ``trend.json`` and the charts ``trend_apdex.png``,
``trend_spps.png``, ``trend_avg.png`` (FunkLoad's) plus ``trend_rps.png``
and ``trend_p95.png``: one line per level of concurrent users.  In the
tables each figure is coloured against the previous bench (better/worse as
in the diff report).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from marteau import __version__
from marteau.errors import MarteauError
from marteau.report.diff import NEUTRAL_PERCENT, Report, read_report, verdict

TREND_NAME = "trend-report"
MAX_LINES = 7  # CUs levels drawn on a chart (the most common ones)
# (chart, table title, family, key, unit)
SERIES = (
    ("trend_spps", "SPPS", "pages", "rate", "successful pages per second"),
    ("trend_apdex", "Page Apdex", "pages", "apdex", "Apdex score"),
    ("trend_avg", "Page AVG (s)", "pages", "avg", "seconds"),
    ("trend_rps", "RPS", "requests", "rate", "requests per second"),
    ("trend_p95", "Request P95 (s)", "requests", "p95", "seconds"),
)


def _short(report: Report, index: int) -> str:
    """A bench's name on the charts: its label, else its number and date."""
    if report.label:
        return f"#{index + 1}\n{report.label[:20]}"
    return f"#{index + 1}\n{report.launched[:10]}".strip()


def _levels(reports: list[Report]) -> list[int]:
    """The CUs levels to draw: those found in most benches, at most MAX_LINES, ascending."""
    seen: dict[int, int] = {}
    for report in reports:
        for row in report.pages or report.requests:
            seen[row["cvus"]] = seen.get(row["cvus"], 0) + 1
    ranked = sorted(seen, key=lambda c: (-seen[c], c))[:MAX_LINES]
    return sorted(ranked)


def _value(report: Report, family: str, cvus: int, key: str) -> float | None:
    for row in getattr(report, family):
        if row["cvus"] == cvus:
            value = row.get(key)
            return None if value is None or value < 0 else float(value)
    return None


def build(
    directories: list[str],
    *,
    output_directory: str = ".",
    report_directory: str | None = None,
    charts: bool = True,
) -> str:
    """Write the trend report of the directories; returns its ``index.html`` path."""
    if len(directories) < 2:
        raise MarteauError("--trend takes at least 2 report directories")
    reports = [read_report(path) for path in directories]
    directory = report_directory or os.path.join(output_directory, TREND_NAME)
    return write_trend(reports, directory, charts=charts)


def write_trend(reports: list[Report], directory: str, *, charts: bool = True) -> str:
    """Write the trend report of reports already read, oldest first, into `directory`
    (the service reads them itself, bounded); returns its ``index.html`` path."""
    os.makedirs(directory, exist_ok=True)
    levels = _levels(reports)
    names = [_short(r, i) for i, r in enumerate(reports)]
    benches = _benches(reports, names, directory)
    tables = _tables(reports, levels, benches)
    chart_names = _charts(directory, tables, levels, names) if charts and levels else {}
    data = {
        "schema": "marteau.trend/1",
        "generator": f"marteau {__version__}",
        "levels": levels,
        "benches": benches,
        "tables": tables,
        "inputs": [asdict(r) for r in reports],
        "neutral_percent": NEUTRAL_PERCENT,
    }
    from marteau.report.html import write_page

    return write_page(
        directory,
        "trend",
        data,
        "trend.html",
        benches=benches,
        levels=levels,
        tables=tables,
        charts=chart_names,
    )


def _benches(reports: list[Report], names: list[str], directory: str) -> list[dict[str, Any]]:
    """One entry per bench: its headline figures (top CUs) and their change since the previous."""
    benches = []
    previous: dict[str, Any] | None = None
    for i, report in enumerate(reports):
        top = report.max_cvus
        row = next((r for r in report.pages if r["cvus"] == top), None)
        if row is None and report.pages:
            row = report.pages[-1]
        figures = {
            key: (row or {}).get(key) for key in ("cvus", "apdex", "rating", "rate", "avg", "p95")
        }
        changes = {}
        for key in ("apdex", "rate", "avg", "p95"):
            ref = previous.get(key) if previous else None
            changes[key] = verdict(key, ref, figures.get(key)) if previous else None
        page = report.index() or report.path
        benches.append(
            {
                "index": i + 1,
                "name": report.name,
                "short": names[i],
                "link": os.path.relpath(os.path.abspath(page), os.path.abspath(directory)),
                "launched": report.launched,
                "label": report.label,
                "title": report.title,
                "max_cvus": top,
                "source": report.source,
                "metadata": {k: v for k, v in report.metadata.items() if k != "label"},
                "description": report.description,
                "figures": figures,
                "changes": changes,
            }
        )
        previous = figures
    return benches


def _tables(
    reports: list[Report], levels: list[int], benches: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One table per series: a row per bench, a cell per CUs level (with its change)."""
    tables = []
    for chart, title, family, key, unit in SERIES:
        rows = []
        for i, report in enumerate(reports):
            cells = []
            for cvus in levels:
                value = _value(report, family, cvus, key)
                before = _value(reports[i - 1], family, cvus, key) if i else None
                change = verdict(key, before, value) if i and before is not None else None
                cells.append({"value": value, "change": change})
            rows.append({"bench": benches[i], "cells": cells})
        tables.append(
            {
                "chart": chart,
                "title": title,
                "family": family,
                "key": key,
                "unit": unit,
                "rows": rows,
            }
        )
    return tables


def _charts(
    directory: str, tables: list[dict[str, Any]], levels: list[int], names: list[str]
) -> dict[str, str]:
    """A chart per table with a value: a line per CUs level; chart -> its file name."""
    from marteau.report.charts import trend_chart

    chart_names: dict[str, str] = {}
    for table in tables:
        lines = [
            (f"{cvus} CUs", [row["cells"][j]["value"] for row in table["rows"]])
            for j, cvus in enumerate(levels)
        ]
        if all(v is None for _label, values in lines for v in values):
            continue
        chart_names[table["chart"]] = trend_chart(
            directory,
            table["chart"],
            f"{table['title']} per bench",
            names,
            lines,
            table["unit"],
            rating_bars=table["key"] == "apdex",
        )
    return chart_names
