"""``marteau report --diff REF CHALLENGER``: what changed between two benches (FUNKLOAD.md §5.5).

Inputs are two report directories, Marteau's or FunkLoad's
(`read_report`): Marteau's ``summary.json`` when there is one (every
figure, including P99), else the "Page stats" and "Request stats" tables
of ``index.rst`` in FunkLoad's fixed layout, so that reports built by
FunkLoad 1.x compare too.  Cycles are matched by their number of
concurrent users (CUs).

The output directory is ``diff_<ref>_vs_<challenger>`` (`diff_name`) under
``-o`` (or exactly ``-r``), holding ``index.html``, ``diff.json`` (the
figures and deltas, machine readable) and the charts ``spps_diff.png``,
``rps_diff.png``, ``apdex_diff.png``, ``request.png`` and ``page.png``.
Every delta is coloured better or worse: for throughput and Apdex higher
is better, for response times and errors lower is better; changes under
`NEUTRAL_PERCENT` are shown as unchanged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from marteau import __version__
from marteau.errors import MarteauError

NEUTRAL_PERCENT = 1.0
HIGHER_IS_BETTER = frozenset(("rate", "max_rate", "apdex", "count", "success"))
# (key, label) of the figures compared, per table
PAGE_METRICS = (
    ("rate", "SPPS"),
    ("apdex", "Apdex"),
    ("error_percent", "ERROR %"),
    ("avg", "AVG"),
    ("p50", "MED"),
    ("p90", "P90"),
    ("p95", "P95"),
    ("p99", "P99"),
)
REQUEST_METRICS = (("rate", "RPS"),) + PAGE_METRICS[1:]

# FunkLoad's column titles -> our keys
_COLUMNS = {
    "CUs": "cvus",
    "Apdex*": "apdex",
    "Apdex": "apdex",
    "Rating": "rating",
    "Rating*": "rating",
    "SPPS": "rate",
    "RPS": "rate",
    "maxSPPS": "max_rate",
    "maxRPS": "max_rate",
    "TOTAL": "count",
    "SUCCESS": "success",
    "ERROR": "error_percent",
    "MIN": "min",
    "AVG": "avg",
    "MAX": "max",
    "P10": "p10",
    "MED": "p50",
    "P90": "p90",
    "P95": "p95",
}


@dataclass
class Report:
    """The figures of one report directory that diff and trend compare."""

    path: str
    name: str  # the directory's basename
    source: str  # "summary.json" or "index.rst"
    title: str
    launched: str
    label: str
    cycles: list[int]
    pages: list[dict[str, Any]]  # one row per cycle: cvus, rate, apdex, ... (see _COLUMNS)
    requests: list[dict[str, Any]]
    metadata: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def max_cvus(self) -> int:
        rows = self.pages or self.requests
        cvus: int = max(self.cycles or [r["cvus"] for r in rows] or [0])
        return cvus

    def index(self) -> str | None:
        """The report's page, if it has one."""
        for name in ("index.html", "index.rst"):
            if os.path.isfile(os.path.join(self.path, name)):
                return os.path.join(self.path, name)
        return None


# ------------------------------------------------------------------ reading


def _row_of(stats: dict[str, Any], rate: str) -> dict[str, Any]:
    row = {
        "cvus": int(stats["cvus"]),
        "apdex": float(stats["apdex"]["score"]),
        "rating": stats["apdex"]["label"],
        "rate": float(stats[rate]),
        "max_rate": float(stats["max_" + rate]),
        "count": int(stats["count"]),
        "success": int(stats["success"]),
        "error_percent": float(stats["error_percent"]),
        "min": float(stats["min"]),
        "avg": float(stats["avg"]),
        "max": float(stats["max"]),
    }
    for key, value in stats["percentiles"].items():
        row[key] = float(value)
    return row


def from_summary(path: str, summary: dict[str, Any]) -> Report:
    """The figures of a parsed ``summary.json``; KeyError, TypeError or ValueError
    when its layout is not a summary's."""
    bench = summary.get("bench") or {}
    cycles = summary.get("cycles") or []
    config = bench.get("config") or {}
    return Report(
        path=path,
        name=os.path.basename(os.path.normpath(path)),
        source="summary.json",
        title="{}.{}".format(bench.get("class", ""), bench.get("method", "")).strip("."),
        launched=bench.get("launched", ""),
        label=bench.get("label") or "",
        cycles=list(bench.get("cycles") or []),
        pages=[_row_of(c["pages"], "spps") for c in cycles if c.get("pages")],
        requests=[_row_of(c["requests"], "rps") for c in cycles if c.get("requests")],
        metadata=dict(bench.get("metadata") or {}),
        description=config.get("description", "") or bench.get("description", ""),
    )


def _rst_table(lines: list[str], heading: str, path: str) -> list[dict[str, Any]]:
    """Rows of the FunkLoad table under `heading` (a title underlined with '-')."""
    start = None
    for i, line in enumerate(lines[:-1]):
        if line.strip() == heading and set(lines[i + 1].strip()) == {"-"}:
            start = i + 2
            break
    if start is None:
        return []
    delimiters: list[int] = []
    for i in range(start, len(lines)):
        stripped = lines[i].strip()
        if stripped.startswith("=====") and set(stripped) <= {"=", " "}:
            delimiters.append(i)
            if len(delimiters) == 3:
                break
        elif stripped and set(stripped) == {"-"}:
            break  # the next section's underline: no (whole) table here
    if len(delimiters) < 3:
        return []
    names = lines[delimiters[0] + 1].split()
    keys = [_COLUMNS.get(name) for name in names]
    rows = []
    for number, line in enumerate(lines[delimiters[1] + 1 : delimiters[2]], delimiters[1] + 2):
        cells = line.split()
        if not cells:
            continue
        if len(cells) != len(names):
            raise MarteauError(
                f"{path}:{number}: {heading} row has {len(cells)} cells for {len(names)} columns"
            )
        row: dict[str, Any] = {}
        for key, cell in zip(keys, cells, strict=True):
            if key is None:
                continue
            if key == "rating":
                row[key] = cell
                continue
            try:
                value = float(cell.rstrip("%"))
            except ValueError:
                raise MarteauError(
                    f"{path}:{number}: {heading}: {cell!r} is not a number"
                ) from None
            row[key] = int(value) if key in ("cvus", "count", "success") else value
        if "cvus" in row:
            rows.append(row)
    return rows


def _bullet(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return ""


def _from_rst(path: str, rst: str) -> Report:
    with open(rst, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    pages = _rst_table(lines, "Page stats", rst)
    requests = _rst_table(lines, "Request stats", rst)
    if not pages and not requests:
        raise MarteauError(f"{path}: not a report directory: index.rst has no Page stats table")
    cycles_text = _bullet(lines, "* Cycles of concurrent users: ").strip("[]")
    try:
        cycles = [int(c) for c in cycles_text.split(",") if c.strip()]
    except ValueError:
        cycles = []
    test = _bullet(lines, "* Test: ").strip("`")
    return Report(
        path=path,
        name=os.path.basename(os.path.normpath(path)),
        source="index.rst",
        title=test.split(" ")[-1] if test else "",
        launched=_bullet(lines, "* Launched: "),
        label=_bullet(lines, "* Label: "),
        cycles=cycles,
        pages=pages,
        requests=requests,
    )


def _metadata(path: str, report: Report) -> None:
    """FunkLoad's optional ``funkload.metadata``: key:value / key=value lines, else description."""
    name = os.path.join(path, "funkload.metadata")
    if not os.path.isfile(name):
        return
    description = []
    with open(name, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = re.match(r"\s*([\w.-]+)\s*[:=]\s*(.*?)\s*$", line)
            if match:
                report.metadata[match.group(1)] = match.group(2)
            elif line.strip():
                description.append(line.strip())
    if report.metadata.get("label"):
        report.label = report.metadata["label"]
    if description:
        report.description = " ".join(description)


def read_report(path: str) -> Report:
    """The figures of a report directory; `MarteauError` naming it when it is not one."""
    if not os.path.isdir(path):
        raise MarteauError(f"{path}: not a report directory (no such directory)")
    summary_path = os.path.join(path, "summary.json")
    rst = os.path.join(path, "index.rst")
    report = None
    if os.path.isfile(summary_path):
        try:
            with open(summary_path, encoding="utf-8") as f:
                summary = json.load(f)
            if isinstance(summary, dict) and "cycles" in summary:
                report = from_summary(path, summary)
        except (ValueError, KeyError, TypeError):
            report = None
        if report is None and not os.path.isfile(rst):
            raise MarteauError(f"{summary_path}: unreadable summary and no index.rst")
    if report is None:
        if not os.path.isfile(rst):
            raise MarteauError(
                f"{path}: not a report directory (no summary.json or index.rst in it)"
            )
        report = _from_rst(path, rst)
    _metadata(path, report)
    return report


# ------------------------------------------------------------------ comparing


def verdict(
    key: str, ref: float | None, new: float | None, neutral: float = NEUTRAL_PERCENT
) -> dict[str, Any]:
    """One compared figure: values, change, and whether it got better or worse; a
    change under `neutral` percent (Apdex: points) is "same"."""
    out: dict[str, Any] = {"ref": ref, "new": new, "delta": None, "percent": None, "class": "na"}
    if ref is None or new is None or ref < 0 or new < 0:  # -1.0: no value
        return out
    delta = new - ref
    out["delta"] = delta
    if ref:
        out["percent"] = 100.0 * delta / abs(ref)
    elif new:
        out["percent"] = None
    change = out["percent"] if out["percent"] is not None else (100.0 if delta else 0.0)
    if key == "apdex":  # a score: compare in points, not percent
        change = 100.0 * delta
    if abs(change) < neutral:
        out["class"] = "same"
    else:
        higher = key in HIGHER_IS_BETTER
        out["class"] = "better" if (delta > 0) == higher else "worse"
    return out


def compare_rows(
    ref: list[dict[str, Any]], new: list[dict[str, Any]], metrics: tuple[tuple[str, str], ...]
) -> list[dict[str, Any]]:
    """Per CUs present in both: each metric's `verdict`."""
    by_cvus = {r["cvus"]: r for r in new}
    out = []
    for row in ref:
        other = by_cvus.get(row["cvus"])
        if other is None:
            continue
        out.append(
            {
                "cvus": row["cvus"],
                "metrics": {
                    key: verdict(key, row.get(key), other.get(key)) for key, _label in metrics
                },
            }
        )
    return out


def diff_name(reference: str, challenger: str) -> str:
    """``diff_<ref>_vs_<challenger>``, the challenger without the prefix both share.

    The shared prefix is cut at a separator, so ``t-20110126T2322`` vs
    ``t-20110127T1010`` gives ``diff_t-20110126T2322_vs_20110127T1010``.
    """
    a = os.path.basename(os.path.normpath(reference))
    b = os.path.basename(os.path.normpath(challenger))
    if a == b:
        return f"diff_{a}_vs_idem"
    common = os.path.commonprefix([a, b])
    cut = max(common.rfind("-"), common.rfind("_")) + 1
    suffix = b[cut:] if cut > 0 else b
    return f"diff_{a}_vs_{suffix or b}"


def _link(target: Report, directory: str) -> str:
    page = target.index() or target.path
    return os.path.relpath(os.path.abspath(page), os.path.abspath(directory))


def _series(
    rows: list[dict[str, Any]], keys: tuple[str, ...], labels: dict[str, str]
) -> list[tuple[str, list[float], list[float]]]:
    out = []
    for key in keys:
        ref = [r["metrics"][key]["ref"] for r in rows]
        new = [r["metrics"][key]["new"] for r in rows]
        if any(v is None or v < 0 for v in ref + new):
            continue
        out.append((labels[key], ref, new))
    return out


def build(
    directories: list[str],
    *,
    output_directory: str = ".",
    report_directory: str | None = None,
    charts: bool = True,
) -> str:
    """Write the diff report of ``[REF, CHALLENGER]``; returns its ``index.html`` path."""
    if len(directories) != 2:
        raise MarteauError("--diff takes exactly 2 report directories")
    ref, new = (read_report(path) for path in directories)
    directory = report_directory or os.path.join(
        output_directory, diff_name(directories[0], directories[1])
    )
    return write_diff(ref, new, directory, charts=charts)


def write_diff(ref: Report, new: Report, directory: str, *, charts: bool = True) -> str:
    """Write the diff report of two reports already read into `directory` (the service
    reads them itself, bounded); returns its ``index.html`` path."""
    os.makedirs(directory, exist_ok=True)
    pages = compare_rows(ref.pages, new.pages, PAGE_METRICS)
    requests = compare_rows(ref.requests, new.requests, REQUEST_METRICS)
    if not pages and not requests:
        common = "no cycle with the same number of concurrent users"
    else:
        common = ""
    chart_names: dict[str, str] = {}
    if charts and (pages or requests):
        chart_names = _charts(directory, pages, requests)
    data = {
        "schema": "marteau.diff/1",
        "generator": f"marteau {__version__}",
        "reference": {**asdict(ref), "link": _link(ref, directory)},
        "challenger": {**asdict(new), "link": _link(new, directory)},
        "pages": pages,
        "requests": requests,
        "neutral_percent": NEUTRAL_PERCENT,
    }
    from marteau.report.html import write_page

    return write_page(
        directory,
        "diff",
        data,
        "diff.html",
        ref=data["reference"],
        new=data["challenger"],
        pages=pages,
        requests=requests,
        page_metrics=PAGE_METRICS,
        request_metrics=REQUEST_METRICS,
        charts=chart_names,
        problem=common,
    )


_LATENCY = ("avg", "p50", "p90", "p95", "p99")


class _Chart(NamedTuple):
    """One comparison chart: the figures `keys` of `rows` (ref and new) by CUs."""

    name: str
    title: str
    rows: list[dict[str, Any]]
    keys: tuple[str, ...]
    labels: dict[str, str]
    higher: bool  # bars (rates, Apdex: higher is better) rather than lines
    unit: str


def _chart_list(pages: list[dict[str, Any]], requests: list[dict[str, Any]]) -> list[_Chart]:
    """The charts of the diff: rate and response times of pages, then requests, then Apdex."""
    page_labels, request_labels = dict(PAGE_METRICS), dict(REQUEST_METRICS)
    out = []
    if pages:
        out.append(
            _Chart(
                "spps_diff",
                "Successful pages per second",
                pages,
                ("rate",),
                page_labels,
                True,
                "pages per second",
            )
        )
        out.append(
            _Chart("page", "Page response time", pages, _LATENCY, page_labels, False, "seconds")
        )
    if requests:
        out.append(
            _Chart(
                "rps_diff",
                "Requests per second",
                requests,
                ("rate",),
                request_labels,
                True,
                "requests per second",
            )
        )
        out.append(
            _Chart(
                "request",
                "Request response time",
                requests,
                _LATENCY,
                request_labels,
                False,
                "seconds",
            )
        )
    title = "Apdex (" + ("pages" if pages else "requests") + ")"
    out.append(
        _Chart("apdex_diff", title, pages or requests, ("apdex",), page_labels, True, "Apdex score")
    )
    return out


def _charts(
    directory: str,
    pages: list[dict[str, Any]],
    requests: list[dict[str, Any]],
) -> dict[str, str]:
    from marteau.report.charts import comparison_chart

    out = {}
    for chart in _chart_list(pages, requests):
        series = _series(chart.rows, chart.keys, chart.labels)
        if not series:
            continue
        out[chart.name] = comparison_chart(
            directory,
            chart.name,
            chart.title,
            [r["cvus"] for r in chart.rows],
            series,
            chart.unit,
            ("ref", "new"),
            chart.higher,
        )
    return out
