"""``summary.json``: every figure of the report, machine readable.

Why: the HTML report, the diff and trend reports, thresholds and CI tools
read numbers from here instead of parsing ``index.rst``.  The layout is
documented field by field in ``docs/summary-json.md``; bump
`SCHEMA` on any incompatible change.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from marteau import __version__
from marteau.report.stats import (
    BenchStats,
    launched,
    parse_cycles,
    slowest_requests,
)

SCHEMA = "marteau.summary/1"
SUMMARY_NAME = "summary.json"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def bench_info(stats: BenchStats) -> dict[str, Any]:
    """The bench configuration block (what FunkLoad lists under 'Bench configuration')."""
    config = stats.config
    cycles = parse_cycles(config.get("cycles"))
    nodes = [n.strip() for n in config.get("node", "").split(",") if n.strip()]
    return {
        "id": config.get("id", ""),
        "module": config.get("module", ""),
        "class": config.get("class", ""),
        "method": config.get("method", ""),
        "class_title": config.get("class_title", ""),
        "class_description": config.get("class_description", ""),
        "description": config.get("description", ""),
        "label": config.get("label") or None,
        "server_url": config.get("server_url", ""),
        "launched": launched(config),
        "time": config.get("marteau:time", config.get("time", "")),
        "cycles": cycles,
        "max_users": max(cycles) if cycles else max((c.cvus for c in stats.cycles), default=0),
        "cycle_duration": stats.duration,
        "sleep_time": _float(config.get("sleep_time")),
        "sleep_time_min": _float(config.get("sleep_time_min")),
        "sleep_time_max": _float(config.get("sleep_time_max")),
        "startup_delay": _float(config.get("startup_delay")),
        "cycle_time": _float(config.get("cycle_time")),
        "nodes": nodes,
        "funkload_version": config.get("version", ""),
        "metadata": {k[5:]: v for k, v in config.items() if k.startswith("meta:")},
        "config": dict(config),
    }


def build_summary(
    stats: BenchStats,
    *,
    inputs: list[dict[str, Any]] | None = None,
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary as a JSON-ready dict.

    ``inputs``: one ``{"path", "node", "used", "reason"}`` per input file;
    ``thresholds``: `marteau.report.thresholds.ThresholdReport.as_dict()`.
    """
    representative = stats.cycle(stats.representative_cycle)
    content = None
    if representative is not None and representative.tests is not None:
        t = representative.tests
        content = {
            "pages": t.pages,
            "redirects": t.redirects,
            "links": t.links,
            "images": t.images,
            "xmlrpc": t.xmlrpc,
        }
    return {
        "schema": SCHEMA,
        "generator": f"marteau {__version__}",
        "apdex_t": stats.apdex_t,
        "bench": bench_info(stats),
        "inputs": inputs or [],
        "warnings": list(stats.warnings),
        "totals": _plain(stats.totals),
        "test_content": content,
        "best_cycle": stats.best_cycle,
        "representative_cycle": stats.representative_cycle,
        "cycles": _plain(stats.cycles),
        "overall": {
            "requests": _plain(stats.overall_requests),
            "pages": _plain(stats.overall_pages),
            "tests": _plain(stats.overall_tests),
        },
        "slowest_requests": _plain(slowest_requests(stats)),
        "descriptions": _plain(stats.descriptions),
        "apdex": _plain(stats.apdex),
        "errors": _plain(stats.errors),
        "error_kinds": _plain(stats.error_kinds),
        "http_codes": _plain(stats.http_codes),
        "nodes": _plain(stats.nodes),
        "open": (
            {"cycles": _plain(stats.open_cycles), "overall": _plain(stats.open_overall)}
            if stats.open_overall is not None
            else None
        ),
        "thresholds": thresholds,
    }


def write_summary(directory: str | os.PathLike[str], summary: dict[str, Any]) -> str:
    """Write ``summary.json`` into `directory`; returns its path."""
    path = os.path.join(os.fspath(directory), SUMMARY_NAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return path


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a summary.json (a report directory or the file itself)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        name = os.path.join(name, SUMMARY_NAME)
    with open(name, encoding="utf-8") as f:
        summary: dict[str, Any] = json.load(f)
    return summary
