"""A finished job's figures, read from its report's `summary.json`, which is untrusted.

The report is built from result files that the job's nodes wrote while running the
user's code: its `summary.json` is data from the other side of a trust boundary. It
is read here once, when the job ends, within a size cap, with NaN and Infinity
refused and every number checked for its type and range; what passes is kept small:
the four key figures on the job's row, and the per-cycle rows the diff and trend
reports compare in the job's `figures.json`, which only the worker writes. Later
comparisons read that file, never the report again."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from marteau.report.diff import Report, from_summary
from marteau.report.summary import SUMMARY_NAME

MAX_SUMMARY = 32 * 2**20  # bytes of summary.json read; a bigger one gives no figures
MAX_FIGURES = 2 * 2**20  # bytes of a job's figures.json (rows of at most MAX_CYCLES)
MAX_CYCLES = 1000  # cycles compared per run (the diff and trend tables)
MAX_TEXT = 200  # characters of a title, label or date kept for the trend's tables
FIGURES_NAME = "figures.json"
ROW_FIELDS = ("title", "launched", "label", "cycles", "pages", "requests")
# the columns of a compared row (diff._row_of); a summary's other percentiles are dropped
ROW_KEYS = frozenset(
    ("cvus", "apdex", "rating", "rate", "max_rate", "count", "success", "error_percent")
    + ("min", "avg", "max", "p10", "p50", "p90", "p95", "p99", "p99_9")
)


class Unreadable(ValueError):
    """The summary is too big, not JSON or not laid out as a summary."""


@dataclass(frozen=True)
class KeyFigures:
    """The headline of a run: its best cycle's requests/s, the whole bench's p95
    (seconds) and error rate (percent of requests), and the standard Apdex."""

    peak_rps: float | None
    p95: float | None
    error_percent: float | None
    apdex: float | None

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())


def _refuse_constant(name: str) -> float:
    raise Unreadable(f"{name} is not a number JSON allows")


def read_json(path: Path, limit: int) -> Any:
    """The JSON document at `path`, read only when it is at most `limit` bytes."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise Unreadable(f"{path.name}: {size} bytes, more than the {limit} read")
            data = f.read(limit + 1)
    except OSError as exc:
        raise Unreadable(f"{path.name}: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew since
        raise Unreadable(f"{path.name}: more than the {limit} bytes read")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"{path.name}: not JSON: {str(exc)[:200]}") from None


def get_path(data: Any, *keys: str) -> Any:
    """`data[k1][k2]...`, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def number(value: Any, low: float = 0.0, high: float = math.inf) -> float | None:
    """`value` as a float if it is a finite int or float within [low, high], else None
    (a bool, a text, -1 for "no value")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def key_figures(summary: Any) -> KeyFigures:
    """The key figures of a parsed summary; a figure it lacks or holds wrong is None."""
    cycles = summary.get("cycles") if isinstance(summary, dict) else None
    rates = [
        number(get_path(cycle, "requests", "rps"))
        for cycle in (cycles if isinstance(cycles, list) else [])[:MAX_CYCLES]
    ]
    peak = max((r for r in rates if r is not None), default=None)
    overall = get_path(summary, "overall", "requests")
    return KeyFigures(
        peak_rps=peak if peak is not None else number(get_path(overall, "rps")),
        p95=number(get_path(overall, "percentiles", "p95")),
        error_percent=number(get_path(overall, "error_percent"), high=100.0),
        apdex=number(get_path(summary, "apdex", "score"), high=1.0),
    )


def _checked_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose every figure is a finite number (the rating a short text)."""
    out = []
    for whole in rows[:MAX_CYCLES]:
        row = {key: value for key, value in whole.items() if key in ROW_KEYS}
        for key, value in row.items():
            if key == "rating":
                if not isinstance(value, str) or len(value) > 20:
                    raise Unreadable(f"cycle rows: rating {str(value)[:40]!r}")
            elif number(value, low=-1.0) is None:
                raise Unreadable(f"cycle rows: {key} {str(value)[:40]!r} is not a number")
        out.append(row)
    return out


def compared_rows(report_dir: Path, summary: Any) -> Report:
    """What the diff and trend reports compare of a parsed summary, checked and cut."""
    try:
        report = from_summary(str(report_dir), summary)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"{SUMMARY_NAME}: not a summary's layout ({exc!r:.200})") from None
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in report.cycles):
        raise Unreadable(f"{SUMMARY_NAME}: bench cycles are not numbers of users")
    return Report(
        path=str(report_dir),
        name=report.name,
        source=report.source,
        title=str(report.title)[:MAX_TEXT],
        launched=str(report.launched)[:MAX_TEXT],
        label=str(report.label)[:MAX_TEXT],
        cycles=report.cycles[:MAX_CYCLES],
        pages=_checked_rows(report.pages),
        requests=_checked_rows(report.requests),
    )


def read_report_figures(report_dir: Path) -> tuple[KeyFigures, Report | None]:
    """The key figures and compared rows of a job's report (`Unreadable` if its
    summary is missing, too big or not JSON; rows None when only they are wrong)."""
    summary = read_json(report_dir / SUMMARY_NAME, MAX_SUMMARY)
    try:
        rows = compared_rows(report_dir, summary)
    except Unreadable:
        rows = None
    return key_figures(summary), rows


def write_rows(job_dir: Path, report: Report) -> None:
    """Keep a run's compared rows in its folder, for the project's later runs."""
    data = {k: v for k, v in asdict(report).items() if k in ROW_FIELDS}
    text = json.dumps(data, allow_nan=False)
    (job_dir / FIGURES_NAME).write_text(text, encoding="utf-8")


def read_rows(job_dir: Path, name: str) -> Report:
    """A run's compared rows, as `write_rows` kept them, named `name` in the tables."""
    data = read_json(job_dir / FIGURES_NAME, MAX_FIGURES)
    if not isinstance(data, dict):
        raise Unreadable(f"{FIGURES_NAME}: not an object")
    try:
        fields = {key: data[key] for key in ROW_FIELDS}
        return Report(path=str(job_dir / "report"), name=name, source=SUMMARY_NAME, **fields)
    except KeyError as exc:
        raise Unreadable(f"{FIGURES_NAME}: no {exc}") from None
    except TypeError as exc:
        raise Unreadable(f"{FIGURES_NAME}: {exc}") from None
