"""The report's charts: FunkLoad's (FUNKLOAD.md §5.3) and Marteau's, as PNG files.

Rendered with matplotlib's Agg backend (no display, no gnuplot).  Why PNG
rather than SVG: ``index.rst`` (FunkLoad's layout, §5.4) links
``<name>.png``; a PNG's size does not grow with the data (an SVG of a
5,000-point time series is a 5,000-vertex path); and the Agg rasteriser is
the fastest matplotlib backend.  They are 864 pixels wide, the size the
page shows them at on a laptop; on a phone they scroll sideways rather
than shrink their text.

FunkLoad's charts, from the per-cycle statistics (a few points each):
``tests``, ``pages_spps``, ``pages``, ``requests_rps``, ``requests`` and
one ``request_<step>.<number>`` per request of the test.  Charts over
wall-clock time need the raw responses: ``time_rps`` (requests per second,
one line per cycle), ``percentiles_time`` (P50/P95/P99 of the response
times per time bucket) and ``distribution`` (histogram of response times).
They come from one aggregation pass (`aggregate`) with numpy: responses are
counted into (time bucket × log-spaced duration bin) cells, so 10 million
requests become a small 2-D table before anything is drawn; the time
buckets widen so that no chart has more than `MAX_TIME_POINTS` points.
The per-bucket percentiles are read from those bins: within ±1.2 % of the
exact value (the bin width is 1/100 of a decade).

Every chart is a `Job` (a drawing function of this module and plain
arguments), drawn by `Rendering`: in worker processes on a multi-core
machine, else in-process.  Diff and trend charts are `comparison_chart`
and `trend_chart`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from marteau.report.stats import APDEX_RATINGS, BenchStats, apdex_label, milliseconds

DPI = 120
SIZE = (7.2, 4.0)  # inches; 864 x 480 pixels at DPI
SMALL = (7.2, 3.3)
# Fixed margins (inches) rather than a layout engine: a third faster to draw.
MARGINS = {"left": 0.85, "right": 0.25, "top": 0.42, "bottom": 0.62}
MAX_TIME_POINTS = 1500
BINS_PER_DECADE = 100
MIN_DURATION = 1e-5  # 10 µs: durations below fall in the first bin
MAX_DECADES = 9  # 10 µs .. 10,000 s
MS = 1000.0  # the charts show durations in milliseconds, as the page's tables

COLORS = {
    "ok": "#2a6fb0",
    "max": "#7fb2e5",
    "error": "#c0392b",
    "avg": "#e67e22",
    "med": "#1b4f72",
    "p95": "#8e44ad",
    "p99": "#c0392b",
    "grid": "#d9dde3",
    "box": "#a9cce3",
    "ref": "#7f8c8d",
    "challenger": "#2a6fb0",
}
RATING_COLORS = {
    "UNACCEPTABLE": "#95a5a6",
    "POOR": "#e74c3c",
    "FAIR": "#f1c40f",
    "Good": "#27ae60",
    "Excellent": "#2a6fb0",
}
CYCLE_PALETTE = ("#2a6fb0", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "font.size": 10.5,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10.5,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": COLORS["grid"],
            "grid.linewidth": 0.6,
            "legend.fontsize": 9.5,
            "legend.frameon": False,
            "svg.fonttype": "none",
        }
    )
    return plt


def _figure(
    size: tuple[float, float], rows: int = 1, ratios: list[float] | None = None, top: float = 0.0
) -> Any:
    """A figure with `rows` stacked axes sharing x, and fixed margins (`top`: extra, inches)."""
    plt = _pyplot()
    width, height = size
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=size,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": ratios} if ratios else None,
    )
    fig.subplots_adjust(
        left=MARGINS["left"] / width,
        right=1 - MARGINS["right"] / width,
        top=1 - (MARGINS["top"] + top) / height,
        bottom=MARGINS["bottom"] / height,
        hspace=0.35 / max(1.0, height / rows),
    )
    return fig, list(axes[:, 0])


def _log_ticks(axis: Any, low: float, high: float) -> None:
    """A log scale with plain labels (0.05, 0.1, 0.2 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 3.2 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save(fig: Any, directory: str, name: str) -> str:
    filename = f"{name}.png"
    fig.savefig(os.path.join(directory, filename), format="png", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return filename


def _cycle_axis(ax: Any, cvus: Sequence[int]) -> None:
    """Cycles as evenly spaced categories labelled with their users."""
    ax.set_xticks(range(len(cvus)))
    ax.set_xticklabels([str(c) for c in cvus])
    ax.set_xlim(-0.6, len(cvus) - 0.4)
    ax.set_xlabel("concurrent users (CUs)")


def _legend(ax: Any, **kwargs: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kwargs)


# -------------------------------------------------------- per-cycle charts


def rate_chart(
    directory: str,
    name: str,
    title: str,
    cvus: list[int],
    rate: list[float],
    rate_label: str,
    unit: str,
    errors: list[float],
    max_rate: list[float] | None = None,
    max_label: str = "",
    apdex: list[float] | None = None,
) -> str:
    """A rate against CUs, with Apdex bars coloured by rating and an error % panel."""
    has_errors = any(e > 0 for e in errors)
    rows = 1 + (apdex is not None) + has_errors
    ratios = [3] + ([1.3] if apdex is not None else []) + ([1.1] if has_errors else [])
    fig, axes = _figure((SIZE[0], 3.0 + 1.25 * (rows - 1)), rows, ratios)
    x = np.arange(len(cvus))
    ax = axes[0]
    ax.plot(x, rate, "o-", color=COLORS["ok"], lw=2, label=rate_label, zorder=3)
    if max_rate is not None:
        ax.plot(x, max_rate, "s--", color=COLORS["max"], lw=1.2, ms=4, label=max_label)
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    _thousands(ax.yaxis)
    ax.set_title(title, loc="left")
    _legend(ax, loc="upper left")
    row = 1
    if apdex is not None:
        ax = axes[row]
        colors = [RATING_COLORS[apdex_label(a)] for a in apdex]
        ax.bar(x, apdex, color=colors, width=0.6)
        ax.set_ylim(0, 1.18)
        ax.set_yticks([0, 0.5, 1.0])
        ax.axhline(0.85, color="#999999", lw=0.8, ls=":", zorder=0)
        ax.set_ylabel("Apdex")
        for xi, a in zip(x, apdex, strict=True):
            ax.text(xi, a + 0.02, f"{a:.2f}", ha="center", va="bottom", fontsize=7.5)
        row += 1
    if has_errors:
        ax = axes[row]
        ax.bar(x, errors, color=COLORS["error"], width=0.6)
        ax.set_ylabel("errors (%)")
        ax.set_ylim(bottom=0)
    _cycle_axis(axes[-1], cvus)
    return _save(fig, directory, name)


def candle_chart(
    directory: str, name: str, title: str, candles: list[dict[str, float]], small: bool = False
) -> str:
    """Whiskers MIN..P95, box P10..P90, median bar, AVG and P99 markers, per CUs."""
    fig, (ax,) = _figure(SMALL if small else SIZE, top=0.3)
    x = np.arange(len(candles))

    def column(key: str) -> Any:
        return MS * np.array([np.nan if c.get(key) is None else c[key] for c in candles], float)

    p10, p90, p95 = column("p10"), column("p90"), column("p95")
    ax.vlines(x, column("min"), p95, color=COLORS["med"], lw=1.2, label="MIN to P95", zorder=2)
    ax.bar(
        x,
        p90 - p10,
        bottom=p10,
        width=0.5,
        color=COLORS["box"],
        edgecolor=COLORS["med"],
        lw=0.8,
        label="P10 to P90",
        zorder=3,
    )
    ax.hlines(column("p50"), x - 0.25, x + 0.25, color=COLORS["med"], lw=2.2, label="MED", zorder=4)
    ax.plot(x, column("avg"), "D", color=COLORS["avg"], ms=5, label="AVG", zorder=5)
    ax.plot(x, p95, "_", color=COLORS["p95"], ms=14, mew=2, label="P95", zorder=5)
    p99 = column("p99")
    if not np.all(np.isnan(p99)):
        ax.plot(x, p99, "v", color=COLORS["p99"], ms=5, label="P99", zorder=5)
    ax.set_ylabel("response time (ms)")
    ax.set_ylim(bottom=0)
    _thousands(ax.yaxis)
    ax.set_title(title, loc="left", pad=24)
    _cycle_axis(ax, [int(c["cvus"]) for c in candles])
    # the legend in a row between the title and the plot, never over a candle
    _legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=6,
        borderaxespad=0.2,
        handlelength=1.4,
        columnspacing=1.2,
        fontsize=9,
    )
    return _save(fig, directory, name)


def _candles(parts: Sequence[Any]) -> list[dict[str, float]]:
    """Candlestick figures of the cycles that have a successful value."""
    out = []
    for s in parts:
        p = s.percentiles
        if p["p50"] < 0:
            continue
        candle = {"cvus": s.cvus, "min": s.min, "avg": s.avg}
        candle.update({k: p[k] for k in ("p10", "p50", "p90", "p95")})
        candle["p99"] = p["p99"] if p.get("p99", -1.0) >= 0 else None
        out.append(candle)
    return out


@dataclass
class Job:
    """One chart to draw: a module-level drawing function and its (plain) arguments;
    both pickle, so a worker process can draw it."""

    name: str
    function: Callable[..., str]
    kwargs: dict[str, Any]


def cycle_jobs(stats: BenchStats) -> list[Job]:
    """FunkLoad's per-cycle charts (tests, pages_spps, pages, requests_rps, requests)."""
    jobs = []
    cycles = stats.cycles
    tests = [c.tests for c in cycles if c.tests is not None]
    if tests:
        jobs.append(
            Job(
                "tests",
                rate_chart,
                dict(
                    title="Successful tests per second",
                    cvus=[t.cvus for t in tests],
                    rate=[t.stps for t in tests],
                    rate_label="STPS",
                    unit="tests per second",
                    errors=[t.error_percent for t in tests],
                ),
            )
        )
    for kind, rate, label, title in (
        ("pages", "spps", "SPPS", "Successful pages per second"),
        ("requests", "rps", "RPS", "Requests per second"),
    ):
        parts = [getattr(c, kind) for c in cycles if getattr(c, kind) is not None]
        if not parts:
            continue
        jobs.append(
            Job(
                f"{kind}_{rate}",
                rate_chart,
                dict(
                    title=title,
                    cvus=[p.cvus for p in parts],
                    rate=[getattr(p, rate) for p in parts],
                    rate_label=label,
                    unit=f"{kind} per second",
                    errors=[p.error_percent for p in parts],
                    max_rate=[float(getattr(p, "max_" + rate)) for p in parts],
                    max_label="max" + label,
                    apdex=[p.apdex.score for p in parts],
                ),
            )
        )
        candles = _candles(parts)
        if candles:
            what = (
                "Page response time (successful pages)"
                if kind == "pages"
                else ("Request response time")
            )
            jobs.append(Job(kind, candle_chart, dict(title=what, candles=candles)))
    return jobs


def step_jobs(stats: BenchStats) -> list[Job]:
    """One ``request_<step>.<number>`` chart per request of the representative cycle."""
    representative = stats.cycle(stats.representative_cycle)
    if representative is None:
        return []
    jobs = []
    for step in representative.steps:
        candles = _candles([s for c in stats.cycles for s in c.steps if s.key == step.key])
        if not candles:
            continue
        label = step.description or step.url
        if len(label) > 60:
            label = label[:59] + "\u2026"
        title = f"Request {step.key} ({step.type}): {label}"
        jobs.append(
            Job(
                f"request_{step.key}",
                candle_chart,
                dict(title=title, candles=candles, small=True),
            )
        )
    return jobs


# -------------------------------------------------------- wall-clock charts


@dataclass
class TimeSeries:
    """Responses aggregated per time bucket and log-spaced duration bin."""

    start: float  # epoch second of the first bucket
    bucket: int  # seconds per time bucket
    cycles: list[int]  # cycle numbers, in order
    cvus: list[int]  # users of each of those cycles
    counts: Any  # int64 [cycles, buckets]: responses started in the bucket, per cycle
    histogram: Any  # int64 [buckets, bins]: all cycles
    edges: Any  # float64 [bins + 1]: bin edges, seconds

    @property
    def seconds(self) -> Any:
        """Offset of each bucket from the start, seconds."""
        return np.arange(self.counts.shape[1]) * self.bucket

    def percentile(self, p: float, min_count: int = 1) -> Any:
        """Per-bucket percentile (bin geometric middle); NaN below `min_count` responses."""
        totals = self.histogram.sum(axis=1)
        cumulative = np.cumsum(self.histogram, axis=1)
        # FunkLoad's sorted-index rule: the value at index int(p/100 * n)
        rank = np.floor(p / 100.0 * totals).astype(np.int64)
        index = np.argmax(cumulative > rank[:, None], axis=1)
        middle = np.sqrt(self.edges[:-1] * self.edges[1:])
        values = middle[index]
        values[totals < max(1, min_count)] = np.nan
        return values

    def distribution(self, per_decade: int = 20) -> tuple[Any, Any]:
        """(edges, counts) of all responses, in coarser bins for a readable histogram."""
        counts = self.histogram.sum(axis=0)
        group = max(1, BINS_PER_DECADE // per_decade)
        used = np.flatnonzero(counts)
        if not used.size:
            return self.edges[:2], np.zeros(1, np.int64)
        lo = (used[0] // group) * group
        hi = min(counts.size, (used[-1] // group + 1) * group)
        grouped = counts[lo:hi].reshape(-1, group).sum(axis=1)
        return self.edges[lo : hi + 1 : group], grouped


def aggregate(responses: Any, max_points: int = MAX_TIME_POINTS) -> TimeSeries | None:
    """One numpy pass over the responses (a structured array) for the wall-clock charts."""
    if responses is None or not len(responses):
        return None
    times = np.asarray(responses["time"], dtype=np.float64)
    start = math.floor(float(times.min()))
    span = int(math.floor(float(times.max()))) - start + 1
    bucket = max(1, math.ceil(span / max_points))
    n_buckets = (span + bucket - 1) // bucket
    slot = times - start
    slot //= bucket
    slot = slot.astype(np.int64)
    del times
    np.clip(slot, 0, n_buckets - 1, out=slot)

    n_bins = BINS_PER_DECADE * MAX_DECADES
    position = np.maximum(np.asarray(responses["duration"], dtype=np.float64), MIN_DURATION)
    np.log10(position, out=position)
    position -= math.log10(MIN_DURATION)
    position *= BINS_PER_DECADE
    bins = position.astype(np.int64)
    del position
    np.clip(bins, 0, n_bins - 1, out=bins)
    bins += slot * n_bins
    histogram = np.bincount(bins, minlength=n_buckets * n_bins).reshape(n_buckets, n_bins)
    del bins
    edges = MIN_DURATION * 10.0 ** (np.arange(n_bins + 1) / BINS_PER_DECADE)

    cycle = np.asarray(responses["cycle"], dtype=np.int64)
    present = np.bincount(cycle)
    cycles = np.flatnonzero(present).tolist()
    dense = np.zeros(present.size, np.int64)
    dense[cycles] = np.arange(len(cycles))
    slot += dense[cycle] * n_buckets
    counts = np.bincount(slot, minlength=len(cycles) * n_buckets).reshape(len(cycles), n_buckets)
    del slot
    # the users of each cycle: those of its first record
    cvus_column = np.asarray(responses["cvus"])
    cvus = [int(cvus_column[_first_index(cycle, number)]) for number in cycles]
    return TimeSeries(start, bucket, cycles, cvus, counts, histogram, edges)


def _first_index(values: Any, target: int, block: int = 1 << 20) -> int:
    """Index of the first `target` in `values`, scanning block by block."""
    for lo in range(0, values.size, block):
        hit = np.flatnonzero(values[lo : lo + block] == target)
        if hit.size:
            return lo + int(hit[0])
    return 0


def _bucket_label(bucket: int) -> str:
    return "per second" if bucket == 1 else f"per {bucket}-second bucket"


def _cycle_spans(series: TimeSeries) -> list[tuple[float, float, int]]:
    spans = []
    x = series.seconds
    for users, row in zip(series.cvus, series.counts, strict=True):
        used = np.flatnonzero(row)
        if used.size:
            spans.append((float(x[used[0]]), float(x[used[-1]] + series.bucket), users))
    return spans


def _shade_cycles(ax: Any, spans: list[tuple[float, float, int]]) -> None:
    """A light band and a 'N CUs' label over each cycle's time range."""
    transform = ax.get_xaxis_transform()
    for i, (a, b, users) in enumerate(spans):
        if i % 2 == 0:
            ax.axvspan(a, b, color="#eef3f8", zorder=0, lw=0)
        ax.text(
            (a + b) / 2,
            0.02,
            f"{users} CUs",
            ha="center",
            va="bottom",
            fontsize=8.5,
            color="#5b6775",
            transform=transform,
        )


def time_rps_chart(
    directory: str, name: str, bucket: int, lines: list[tuple[str, Any, Any]]
) -> str:
    """Requests per second over wall-clock time, one line per cycle."""
    columns = min(8, max(1, len(lines)))
    rows = math.ceil(len(lines) / columns)
    fig, (ax,) = _figure(SIZE, top=0.22 * rows)
    for i, (label, x, y) in enumerate(lines):
        marker = "o" if len(x) <= 30 else None  # a short cycle would be an invisible line
        color = CYCLE_PALETTE[i % len(CYCLE_PALETTE)]
        ax.plot(x, y, color=color, lw=1.3, marker=marker, ms=3.5, label=label)
    ax.set_ylim(bottom=0)
    _thousands(ax.yaxis)
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("requests per second")
    ax.set_title(
        f"Requests per second over time ({_bucket_label(bucket)})", loc="left", pad=6 + 16 * rows
    )
    _legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=columns,
        borderaxespad=0.2,
        handlelength=1.4,
        columnspacing=1.2,
        fontsize=9,
    )
    return _save(fig, directory, name)


def _thousands(axis: Any) -> None:
    """Large counts with thousands separators (60,000 rather than 60000)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1000 else f"{v:g}"))


def percentiles_time_chart(
    directory: str,
    name: str,
    bucket: int,
    x: Any,
    lines: list[tuple[str, Any]],
    spans: list[tuple[float, float, int]],
) -> str:
    """P50/P95/P99 of the response times per time bucket (log scale)."""
    fig, (ax,) = _figure(SIZE, top=0.22)
    styles = ((COLORS["med"], 1.5), (COLORS["p95"], 1.2), (COLORS["p99"], 1.0))
    for (label, y), (color, width) in zip(lines, styles, strict=False):
        ax.plot(x, MS * np.asarray(y, float), color=color, lw=width, label=label)
    ax.set_yscale("log")
    finite = MS * np.concatenate([np.asarray(y, float) for _label, y in lines] or [np.ones(1)])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        _log_ticks(ax.yaxis, float(finite.min()), float(finite.max()))
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("response time (ms, log scale)")
    _shade_cycles(ax, spans)
    ax.set_title(
        f"Response time percentiles over time ({_bucket_label(bucket)})", loc="left", pad=22
    )
    _legend(ax, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, borderaxespad=0.2, fontsize=9)
    return _save(fig, directory, name)


def distribution_chart(
    directory: str,
    name: str,
    edges: Any,
    counts: Any,
    markers: list[tuple[str, float]],
) -> str:
    """Histogram of every response time on log-spaced bins."""
    fig, (ax,) = _figure(SIZE)
    edges = MS * np.asarray(edges, float)
    ax.stairs(counts, edges, fill=True, color=COLORS["box"], edgecolor=COLORS["ok"], lw=1.0)
    ax.stairs(counts, edges, color=COLORS["ok"], lw=1.0)
    ax.set_xscale("log")
    _log_ticks(ax.xaxis, float(edges[0]), float(edges[-1]))
    positive = counts[counts > 0]
    if positive.size and positive.max() / positive.min() > 1000:
        ax.set_yscale("log")
        ax.set_ylabel("responses (log scale)")
    else:
        ax.set_ylabel("responses")
    colors = (COLORS["med"], COLORS["p95"], COLORS["p99"], "#555555")
    for (label, value), color in zip(markers, colors, strict=False):
        ls = ":" if label.startswith("Apdex") else "--"
        ax.axvline(MS * value, color=color, lw=1.2, ls=ls, label=label)
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_title(f"Response time distribution ({int(counts.sum()):,} requests)", loc="left")
    _legend(ax, loc="upper right")
    return _save(fig, directory, name)


def time_jobs(series: TimeSeries | None, stats: BenchStats | None = None) -> list[Job]:
    """The wall-clock charts: time_rps, percentiles_time and distribution."""
    if series is None:
        return []
    x = series.seconds
    lines = []
    for users, row in zip(series.cvus, series.counts, strict=True):
        used = np.flatnonzero(row)
        if used.size:
            part = slice(used[0], used[-1] + 1)
            lines.append((f"{users} CUs", x[part], row[part] / series.bucket))
    totals = series.histogram.sum(axis=1)
    # a bucket with few responses (a cycle's ragged end) makes a meaningless P99
    busy = totals[totals > 0]
    min_count = int(min(20, np.median(busy))) if busy.size else 1
    percentile_lines = [
        (label, series.percentile(p, min_count))
        for p, label in ((50, "P50 (median)"), (95, "P95"), (99, "P99"))
    ]
    edges, counts = series.distribution()
    markers = []
    overall = stats.overall_requests if stats is not None else None
    if overall is not None:
        for key, label in (("p50", "MED"), ("p95", "P95"), ("p99", "P99")):
            value = overall.percentiles.get(key, -1.0)
            if value > 0:
                markers.append((f"{label} {milliseconds(value)} ms", value))
        markers.append((f"Apdex T {milliseconds(stats.apdex_t)} ms", stats.apdex_t))
    return [
        Job("time_rps", time_rps_chart, dict(bucket=series.bucket, lines=lines)),
        Job(
            "percentiles_time",
            percentiles_time_chart,
            dict(
                bucket=series.bucket,
                x=x + series.bucket / 2,
                lines=percentile_lines,
                spans=_cycle_spans(series),
            ),
        ),
        Job("distribution", distribution_chart, dict(edges=edges, counts=counts, markers=markers)),
    ]


# -------------------------------------------------------- monitored hosts

MONITOR_PLUGINS = ("MonitorCPU", "MonitorMemFree", "MonitorNetwork", "MonitorCUs")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _key_cvus(key: str) -> float:
    """The users of a monitor record's key ``<method>:<cycle>:<cvus>``."""
    parts = str(key or "").rsplit(":", 2)
    return _number(parts[-1]) if len(parts) == 3 else math.nan


def _safe_name(host: str) -> str:
    """A host name fit for a chart's file name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in host) or "host"


def _rate(values: Any, seconds: Any) -> Any:
    """Per-second deltas of a counter (NaN first, and where it went back or time did not pass)."""
    out = np.full(values.size, np.nan)
    if values.size > 1:
        dv, dt = np.diff(values), np.diff(seconds)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[1:] = np.where((dt > 0) & (dv >= 0), dv / dt, np.nan)
    return out


def monitor_hosts(
    monitors: Sequence[dict[str, str]],
    config: dict[str, str],
    series: TimeSeries | None = None,
) -> list[dict[str, Any]]:
    """The monitored hosts of a bench: name, description, charts (name, title) and jobs.

    `monitors` are FunkLoad's ``<monitor>`` records (attribute strings);
    the description of a host is the config value keyed by its name.
    One chart per plugin group whose attributes the records carry, named
    ``<host>_<Plugin>`` as FunkLoad's; ``MonitorCUs`` (users over time,
    from the record keys) always; ``<host>_MonitorOther`` for values no
    plugin knows (a Prometheus query's, by its name). With the responses'
    `series`, the charts share the time charts' origin and cycle bands.
    """
    from marteau.report.monitoring import KNOWN

    by_host: dict[str, list[dict[str, str]]] = {}
    for record in monitors:
        by_host.setdefault(record.get("host", "") or "unknown", []).append(record)
    start = min((_number(m.get("time")) for m in monitors), default=math.nan)
    aligned = series is not None
    if series is not None:
        start = float(series.start)
    spans = _cycle_spans(series) if series is not None else []
    hosts = []
    for host, records in by_host.items():
        records = sorted(records, key=lambda m: _number(m.get("time")))

        def column(name: str, records: list[dict[str, str]] = records) -> Any:
            return np.array([_number(m.get(name)) for m in records], float)

        def has(*names: str, records: list[dict[str, str]] = records) -> bool:
            return any(name in m for m in records for name in names)

        x = column("time") - (start if math.isfinite(start) else 0.0)
        prefix = _safe_name(host)
        jobs = []
        if has("CPUTotalJiffies", "loadAvg1min"):
            busy, idle = column("CPUTotalJiffies"), column("IDLTotalJiffies")
            cpu = np.full(x.size, np.nan)
            if x.size > 1:  # FunkLoad's: busy jiffies over busy + idle ones
                db, di = np.diff(busy), np.diff(idle)
                with np.errstate(invalid="ignore", divide="ignore"):
                    cpu[1:] = np.where(db + di > 0, 100.0 * db / (db + di), np.nan)
            loads = [
                (f"load {n}", column(f"loadAvg{n}"))
                for n in ("1min", "5min", "15min")
                if has(f"loadAvg{n}")
            ]
            jobs.append(
                Job(
                    f"{prefix}_MonitorCPU",
                    monitor_chart,
                    dict(
                        title=f"{host}: load average and CPU usage",
                        x=x,
                        panels=[
                            ("load average", loads),
                            ("CPU usage (%)", [("CPU", cpu)] if has("CPUTotalJiffies") else []),
                        ],
                    ),
                )
            )
        if has("memFree", "swapFree"):
            # relative to the start: a missing total (constant) or cache counts as 0
            used = (
                np.nan_to_num(column("memTotal"))
                - column("memFree")
                - np.nan_to_num(column("buffers"))
                - np.nan_to_num(column("cached"))
            )
            swap = np.nan_to_num(column("swapTotal")) - column("swapFree")
            lines = [
                (label, y - y[0])
                for label, y, field in (("memory", used, "memFree"), ("swap", swap, "swapFree"))
                if has(field)
            ]
            jobs.append(
                Job(
                    f"{prefix}_MonitorMemFree",
                    monitor_chart,
                    dict(
                        title=f"{host}: memory and swap used, relative to the start",
                        x=x,
                        panels=[("used (kB)", lines)],
                        floor=False,
                    ),
                )
            )
        for plugin, what, counters in (
            ("MonitorNetwork", "network", (("in", "receiveBytes"), ("out", "transmitBytes"))),
            ("MonitorDisk", "disk", (("read", "diskReadBytes"), ("write", "diskWriteBytes"))),
        ):
            if not has(*(name for _, name in counters)):
                continue
            seconds = column("time")
            lines = [(label, _rate(column(name), seconds) / 1000.0) for label, name in counters]
            jobs.append(
                Job(
                    f"{prefix}_{plugin}",
                    monitor_chart,
                    dict(title=f"{host}: {what} traffic", x=x, panels=[("kB/s", lines)]),
                )
            )
        others = sorted({name for m in records for name in m} - KNOWN)
        if others:
            jobs.append(
                Job(
                    f"{prefix}_MonitorOther",
                    monitor_chart,
                    dict(
                        title=f"{host}: other values",
                        x=x,
                        panels=[(name, [(name, column(name))]) for name in others[:8]],
                        floor=False,
                    ),
                )
            )
        cvus = np.array([_key_cvus(m.get("key", "")) for m in records], float)
        jobs.append(
            Job(
                f"{prefix}_MonitorCUs",
                monitor_chart,
                dict(
                    title=f"{host}: concurrent users over time",
                    x=x,
                    panels=[("concurrent users (CUs)", [("CUs", cvus)])],
                    steps=True,
                ),
            )
        )
        for job in jobs:
            job.kwargs.update(spans=spans, aligned=aligned)
        hosts.append(
            {
                "host": host,
                "description": config.get(host, ""),
                "charts": [(job.name, job.kwargs["title"]) for job in jobs],
                "jobs": jobs,
            }
        )
    return hosts


def monitor_chart(
    directory: str,
    name: str,
    title: str,
    x: Any,
    panels: list[tuple[str, list[tuple[str, Any]]]],
    steps: bool = False,
    floor: bool = True,
    spans: list[tuple[float, float, int]] | None = None,
    aligned: bool = False,
) -> str:
    """Monitor values over wall-clock time: one panel per unit, one line per value.

    `steps`: a step line (users); `floor`: the y axes start at 0; `spans`: the
    cycles' bands, as on the time charts; `aligned`: x is on their origin.
    """
    panels = [(unit, lines) for unit, lines in panels if lines] or [("value", [])]
    fig, axes = _figure((SIZE[0], 3.2 + 1.6 * (len(panels) - 1)), len(panels))
    fig.subplots_adjust(left=1.1 / SIZE[0])  # room for "100,000" and the unit
    x = np.asarray(x, float)
    for ax, (unit, lines) in zip(axes, panels, strict=True):
        for i, (label, y) in enumerate(lines):
            color = CYCLE_PALETTE[i % len(CYCLE_PALETTE)]
            marker = "o" if x.size <= 30 else None
            if steps:
                ax.step(x, y, where="pre", color=color, lw=1.5, marker=marker, ms=3, label=label)
            else:
                ax.plot(x, y, color=color, lw=1.4, marker=marker, ms=3, label=label)
        ax.set_ylabel(unit)
        if spans:
            _shade_cycles(ax, spans)
        if floor:
            ax.set_ylim(bottom=0)
        _thousands(ax.yaxis)
        if steps:
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _legend(ax, loc="best")
    axes[0].set_title(title, loc="left")
    axes[-1].set_xlabel(
        "time since the first request (s)" if aligned else "time since the first monitor record (s)"
    )
    return _save(fig, directory, name)


def plan(stats: BenchStats, responses: Any = None) -> list[Job]:
    """Every chart of a bench report, in the report's order."""
    return cycle_jobs(stats) + time_jobs(aggregate(responses), stats) + step_jobs(stats)


def _draw(directory: str, job: Job) -> str:
    return job.function(directory, job.name, **job.kwargs)


def _warm() -> None:
    """A worker's first task: import matplotlib while the parent is still planning."""
    _pyplot()


class Rendering:
    """Charts being drawn, by worker processes when there are several cores.

    Why processes: drawing a chart is ~0.1 s of pure-Python matplotlib
    work and a report has a dozen or more; two cores halve that.  The
    workers (a `ProcessPoolExecutor`, spawned: no fork of a caller's
    threads) start and import matplotlib as soon as the object exists,
    before the jobs are known, so that their start overlaps the numpy
    aggregation and the writing of the page.  A spawned worker imports the
    caller's main module, as any multiprocessing worker does: Marteau's
    commands guard theirs.

    Use: ``r = Rendering(directory, expected=n)``, ``r.submit(jobs)``,
    ``r.wait()`` -> {chart name: file name}; `MarteauError` if a chart
    cannot be drawn (a chart a worker failed to draw is drawn again
    in-process).
    """

    def __init__(
        self,
        directory: str,
        jobs: list[Job] | None = None,
        workers: int | None = None,
        expected: int | None = None,
    ) -> None:
        self.directory = directory
        self.jobs: list[Job] = []
        self.futures: list[Future[str]] = []
        count = len(jobs) if jobs is not None else (expected or 0)
        if workers is None:
            # a process that already has matplotlib draws faster than new workers start
            warm = "matplotlib.pyplot" in sys.modules
            workers = 1 if warm or count < 6 else min(count, _cores(), 4)
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1 and count > 2:
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(workers, mp_context=context)
            try:  # one warm-up task per worker: each starts now, not at the first job
                for _ in range(workers):
                    self.pool.submit(_warm)
            except OSError:
                self._close()  # wait() draws everything here
        if jobs is not None:
            self.submit(jobs)

    def submit(self, jobs: list[Job]) -> None:
        """Hand the jobs to the workers; call once."""
        self.jobs = list(jobs)
        if self.pool is not None:
            self.futures = [self.pool.submit(_draw, self.directory, job) for job in self.jobs]

    def wait(self) -> dict[str, str]:
        from marteau.errors import MarteauError

        written: dict[str, str] = {}
        for job, future in zip(self.jobs, self.futures, strict=False):
            with contextlib.suppress(Exception):  # drawn again below, with its error
                written[job.name] = future.result()
        self._close()
        try:
            for job in self.jobs:
                if job.name not in written:
                    written[job.name] = _draw(self.directory, job)
        except Exception as exc:  # matplotlib errors
            raise MarteauError(f"{self.directory}: cannot draw the charts: {exc}") from exc
        return {job.name: written[job.name] for job in self.jobs}

    def _close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def render_charts(
    directory: str, stats: BenchStats, responses: Any = None, workers: int | None = 1
) -> dict[str, str]:
    """Every chart of a bench report into `directory`; returns {chart name: file name}."""
    return Rendering(directory, plan(stats, responses), workers).wait()


# -------------------------------------------------------- diff and trend


def comparison_chart(
    directory: str,
    name: str,
    title: str,
    cvus: list[int],
    series: list[tuple[str, list[float], list[float]]],
    unit: str,
    labels: tuple[str, str],
    higher_is_better: bool,
) -> str:
    """Reference vs challenger per CUs for some metrics, with a % change panel.

    Colours name the metrics; dashed lines are the reference, solid ones the
    challenger.  The bars (one per metric, in legend order) are the change,
    green when better and red when worse.
    """
    from matplotlib.lines import Line2D

    fig, (ax, delta_ax) = _figure((SIZE[0], 4.9), 2, [3, 1.4], top=0.25)
    x = np.arange(len(cvus))
    width = 0.8 / max(1, len(series))
    markers = "osD^v"
    handles = []
    for i, (metric, ref, chal) in enumerate(series):
        color = CYCLE_PALETTE[i % len(CYCLE_PALETTE)]
        marker = markers[i % len(markers)]
        ax.plot(x, ref, ls="--", marker=marker, color=color, alpha=0.5, lw=1.2, ms=4)
        ax.plot(x, chal, ls="-", marker=marker, color=color, lw=2, ms=5)
        handles.append(Line2D([], [], color=color, marker=marker, lw=2, label=metric))
        change = [100.0 * (c - r) / r if r else 0.0 for r, c in zip(ref, chal, strict=True)]
        better = [(c >= 0) == higher_is_better or c == 0 for c in change]
        delta_ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            change,
            width=width * 0.9,
            color=["#27ae60" if b else "#c0392b" for b in better],
            edgecolor=color,
            lw=1.0,
        )
    handles.append(Line2D([], [], color="#555555", ls="--", lw=1.2, label=labels[0]))
    handles.append(Line2D([], [], color="#555555", ls="-", lw=2, label=labels[1]))
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    _thousands(ax.yaxis)
    ax.set_title(title, loc="left", pad=22)
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=len(handles),
        borderaxespad=0.2,
        handlelength=1.8,
        columnspacing=1.1,
        fontsize=9,
    )
    delta_ax.axhline(0, color="#555", lw=0.8)
    delta_ax.set_ylabel("change (%)")
    delta_ax.text(
        0.0,
        1.02,
        f"{labels[1]} vs {labels[0]}: green better, red worse",
        transform=delta_ax.transAxes,
        fontsize=8.5,
        color="#5b6775",
        va="bottom",
    )
    _cycle_axis(delta_ax, cvus)
    return _save(fig, directory, name)


def trend_chart(
    directory: str,
    name: str,
    title: str,
    bench_labels: list[str],
    lines: list[tuple[str, list[float | None]]],
    unit: str,
    rating_bars: bool = False,
) -> str:
    """One line per series (a CUs level, or a metric) across benches."""
    fig, (ax,) = _figure((SIZE[0], 4.3), top=0.22)
    x = np.arange(len(bench_labels))
    for i, (label, values) in enumerate(lines):
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, y, "o-", color=CYCLE_PALETTE[i % len(CYCLE_PALETTE)], lw=1.6, ms=4, label=label)
    if rating_bars:
        ax.set_ylim(0, 1.05)
        for limit, _label in APDEX_RATINGS:
            ax.axhline(limit, color="#bbb", lw=0.8, ls=":", zorder=0)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xticks(x)
    many = len(bench_labels) > 6
    ax.set_xticklabels(
        bench_labels, rotation=35 if many else 0, ha="right" if many else "center", fontsize=9
    )
    ax.set_xlim(-0.5, len(bench_labels) - 0.5)
    ax.set_ylabel(unit)
    ax.set_title(title, loc="left", pad=22)
    _legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=max(1, len(lines)),
        borderaxespad=0.2,
        fontsize=9,
    )
    return _save(fig, directory, name)
