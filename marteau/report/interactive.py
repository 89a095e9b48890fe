"""The report's interactive charts: the data of each chart as JSON for the browser.

The PNG charts (`marteau.report.charts`) stay: ``index.rst`` links them and
the page shows them when its scripts do not run.  Where scripts run,
``static/marteau-charts.js`` draws each chart again with uPlot (MIT,
vendored from its npm package by ``make vendor-js``, inlined into the page)
from a *spec* built here out of the very arguments the PNG was drawn from
(`spec`), so that both show the same numbers: hover for values, drag to
zoom a range, click a legend entry to hide its series.

Why a spec per drawing function rather than the raw responses: the data is
already aggregated (`time_charts.aggregate` caps the wall-clock charts at
`time_charts.MAX_TIME_POINTS` buckets), so 10 million requests still make a few
hundred kB of JSON; values are rounded to 4 significant digits, which is
more than a chart shows (the tables keep the exact figures).

A spec is plain JSON: ``title``, ``x`` (values), ``xlabel``, ``xlog``,
``xticks`` (labels of categorical x values, such as CUs), ``axes`` (y axes:
``label``, ``log``, ``min``, ``max``), ``series`` (``label``, ``color``,
``y``, ``axis``, ``dash``, ``points``, ``line``, ``step``), and optionally
``bands`` (shaded x ranges with a label), ``marks`` (labelled vertical
lines) and ``candles`` (the series indexes of min, p10, p50, p90, p95).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from marteau.report import charts, monitor_charts, time_charts
from marteau.report.chart_pool import Job
from marteau.report.chart_style import COLORS, CYCLE_PALETTE, MS

STATIC = os.path.join(os.path.dirname(__file__), "static")
LIBRARY = ("uPlot.iife.min.js", "marteau-charts.js")
STYLE = "uPlot.min.css"
SIGNIFICANT = 4


def _number(value: Any) -> float | None:
    """A value for the JSON: 4 significant digits; None (a gap) for NaN or infinity."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT}g}")


def _values(values: Any, scale: float = 1.0) -> list[float | None]:
    return [_number(v) for v in np.asarray(values, float) * scale]


def _series(label: str, color: str, y: Any, axis: int = 0, **style: Any) -> dict[str, Any]:
    return {"label": label, "color": color, "y": y, "axis": axis, **style}


def _cycle_x(cvus: Sequence[int]) -> dict[str, Any]:
    return {"x": list(range(len(cvus))), "xticks": [str(c) for c in cvus], "xlabel": "CUs"}


def rate_spec(
    title: str,
    cvus: list[int],
    rate: list[float],
    rate_label: str,
    unit: str,
    errors: list[float],
    max_rate: list[float] | None = None,
    max_label: str = "",
    apdex: list[float] | None = None,
) -> dict[str, Any]:
    """`charts.rate_chart`: the rate (and max rate) per CUs, Apdex and error % on the right."""
    axes = [{"label": unit, "min": 0}]
    series = [_series(rate_label, COLORS["ok"], _values(rate), points=True, width=2)]
    if max_rate is not None:
        series.append(_series(max_label, COLORS["max"], _values(max_rate), points=True, dash=True))
    if apdex is not None:
        axes.append({"label": "Apdex", "min": 0, "max": 1.0})
        series.append(_series("Apdex", "#27ae60", _values(apdex), len(axes) - 1, points=True))
    if any(e > 0 for e in errors):
        axes.append({"label": "errors (%)", "min": 0})
        series.append(_series("errors (%)", COLORS["error"], _values(errors), len(axes) - 1))
    return {"title": title, **_cycle_x(cvus), "axes": axes, "series": series}


CANDLE_PARTS = (
    ("min", "MIN", COLORS["med"]),
    ("p10", "P10", COLORS["box"]),
    ("p50", "MED", COLORS["med"]),
    ("p90", "P90", COLORS["box"]),
    ("p95", "P95", COLORS["p95"]),
    ("avg", "AVG", COLORS["avg"]),
    ("p99", "P99", COLORS["p99"]),
)


def candle_spec(title: str, candles: list[dict[str, float]], small: bool = False) -> dict[str, Any]:
    """`charts.candle_chart`: one series per figure, drawn as candles (MIN..P95, P10..P90, MED)."""
    series = []
    for key, label, color in CANDLE_PARTS:
        values = [MS * c[key] if c.get(key) is not None else math.nan for c in candles]
        if key == "p99" and all(math.isnan(v) for v in values):
            continue
        series.append(_series(label, color, _values(values), points=True, line=False))
    return {
        "title": title,
        **_cycle_x([int(c["cvus"]) for c in candles]),
        "axes": [{"label": "response time (ms)", "min": 0}],
        "series": series,
        "candles": [0, 1, 2, 3, 4],
        "small": small,
    }


def _grid_x(lines: Sequence[tuple[str, Any, Any]]) -> tuple[Any, list[Any]]:
    """One x for lines over different x ranges: their union, each line None elsewhere."""
    x = np.unique(np.concatenate([np.asarray(line[1], float) for line in lines]))
    ys = []
    for _label, lx, ly in lines:
        y = np.full(x.size, np.nan)
        y[np.searchsorted(x, np.asarray(lx, float))] = np.asarray(ly, float)
        ys.append(y)
    return x, ys


def time_rps_spec(
    bucket: int, lines: list[tuple[str, Any, Any]], xlabel: str = ""
) -> dict[str, Any]:
    """`time_charts.time_rps_chart`: requests per second over time, one line per cycle.

    Also the service's live chart (`marteau.service.live_figures`), with
    its own x label.
    """
    x, ys = _grid_x(lines) if lines else (np.zeros(0), [])
    return {
        "title": f"Requests per second over time ({time_charts.bucket_label(bucket)})",
        "x": _values(x),
        "xlabel": xlabel or "time since the first request (s)",
        "axes": [{"label": "requests per second", "min": 0}],
        "series": [
            _series(label, CYCLE_PALETTE[i % len(CYCLE_PALETTE)], _values(y), points=x.size <= 30)
            for i, ((label, _x, _y), y) in enumerate(zip(lines, ys, strict=True))
        ],
    }


def percentiles_time_spec(
    bucket: int,
    x: Any,
    lines: list[tuple[str, Any]],
    spans: list[tuple[float, float, int]],
    over: str = "",
    xlabel: str = "",
) -> dict[str, Any]:
    """`time_charts.percentiles_time_chart`: P50/P95/P99 per time bucket (log scale), cycles shaded.

    Also the service's live chart, whose points are each over the nodes' last
    seconds (``over``), with its own x label.
    """
    colors = (COLORS["med"], COLORS["p95"], COLORS["p99"])
    return {
        "title": f"Response time percentiles over time ({over or time_charts.bucket_label(bucket)})",
        "x": _values(x),
        "xlabel": xlabel or "time since the first request (s)",
        "axes": [{"label": "response time (ms, log scale)", "log": True}],
        "series": [
            _series(label, colors[i % len(colors)], _values(y, MS))
            for i, (label, y) in enumerate(lines)
        ],
        "bands": [[_number(a), _number(b), f"{users} CUs"] for a, b, users in spans],
    }


def distribution_spec(edges: Any, counts: Any, markers: list[tuple[str, float]]) -> dict[str, Any]:
    """`time_charts.distribution_chart`: the histogram of response times (log x), markers as lines."""
    counts = np.asarray(counts, float)
    positive = counts[counts > 0]
    log = bool(positive.size and positive.max() / positive.min() > 1000)
    y = np.append(counts, counts[-1:])  # a step per bin: the last one needs its right edge
    if log:
        y[y == 0] = math.nan
    colors = (COLORS["med"], COLORS["p95"], COLORS["p99"], "#555555")
    return {
        "title": f"Response time distribution ({int(counts.sum()):,} requests)",
        "x": _values(edges, MS),
        "xlabel": "response time (ms, log scale)",
        "xlog": True,
        "axes": [{"label": "responses (log scale)" if log else "responses", "log": log, "min": 0}],
        "series": [_series("responses", COLORS["ok"], _values(y), step=True, fill=COLORS["box"])],
        "marks": [
            [label, _number(MS * value), colors[i % len(colors)]]
            for i, (label, value) in enumerate(markers)
        ],
    }


def monitor_spec(
    title: str,
    x: Any,
    panels: list[tuple[str, list[tuple[str, Any]]]],
    steps: bool = False,
    floor: bool = True,
    spans: list[tuple[float, float, int]] | None = None,
    aligned: bool = False,
    xlabel: str = "",
) -> dict[str, Any]:
    """`monitor_charts.monitor_chart`: a monitored host's values over time, one y axis per unit,
    with the cycles' bands when the samples are aligned on the time charts' origin.

    Also the service's live users and failed tests chart, with its own x label.
    """
    axes: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    for unit, lines in panels:
        if not lines:
            continue
        axes.append({"label": unit, **({"min": 0} if floor else {})})
        for label, y in lines:
            color = CYCLE_PALETTE[len(series) % len(CYCLE_PALETTE)]
            series.append(_series(label, color, _values(y), len(axes) - 1, step=steps))
    spec: dict[str, Any] = {
        "title": title,
        "x": _values(x),
        "xlabel": xlabel
        or (
            "time since the first request (s)"
            if aligned
            else "time since the first monitor record (s)"
        ),
        "axes": axes or [{"label": "value"}],
        "series": series,
    }
    if spans:
        spec["bands"] = [[_number(a), _number(b), f"{users} CUs"] for a, b, users in spans]
    return spec


SPECS: dict[Callable[..., str], Callable[..., dict[str, Any]]] = {
    charts.rate_chart: rate_spec,
    charts.candle_chart: candle_spec,
    time_charts.time_rps_chart: time_rps_spec,
    time_charts.percentiles_time_chart: percentiles_time_spec,
    time_charts.distribution_chart: distribution_spec,
    monitor_charts.monitor_chart: monitor_spec,
}


def specs(jobs: Sequence[Job]) -> dict[str, dict[str, Any]]:
    """{chart name: spec} of the jobs that have an interactive form."""
    return {job.name: SPECS[job.function](**job.kwargs) for job in jobs if job.function in SPECS}


def script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` as such.

    Why: a URL or a description of the test is hostile; escaped, no text of
    it can close the element (``</script>``) or open a comment, and
    ``JSON.parse`` gives the text back unchanged.
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def read_static(name: str) -> str:
    with open(os.path.join(STATIC, name), encoding="utf-8") as f:
        return f.read()


def page_assets() -> dict[str, Any]:
    """The inline scripts and style of a page with interactive charts, and the CSP sources
    (``'sha256-...'``) that allow exactly those scripts and no other."""
    scripts = [read_static(name) for name in LIBRARY]
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    ]
    return {"scripts": scripts, "style": read_static(STYLE), "script_src": " ".join(hashes)}
