"""The report's charts over wall-clock time: requests per second, percentiles, distribution.

They need the raw responses: ``time_rps`` (requests per second, one line
per cycle), ``percentiles_time`` (P50/P95/P99 of the response times per time
bucket) and ``distribution`` (histogram of response times).  They come from
one aggregation pass (`aggregate`) with numpy: responses are counted into
(time bucket × log-spaced duration bin) cells, so 10 million requests become
a small 2-D table before anything is drawn; the time buckets widen so that
no chart has more than `MAX_TIME_POINTS` points.  The per-bucket percentiles
are read from those bins: within ±1.2 % of the exact value (the bin width is
1/100 of a decade).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from marteau.report.chart_pool import Job
from marteau.report.chart_style import (
    COLORS,
    CYCLE_PALETTE,
    MS,
    SIZE,
    figure,
    legend,
    log_ticks,
    save,
    thousands,
)
from marteau.report.stats import BenchStats, milliseconds

MAX_TIME_POINTS = 1500
BINS_PER_DECADE = 100
MIN_DURATION = 1e-5  # 10 µs: durations below fall in the first bin
MAX_DECADES = 9  # 10 µs .. 10,000 s


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
    offset = times - start
    offset //= bucket
    slot = offset.astype(np.int64)
    del times, offset
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


def bucket_label(bucket: int) -> str:
    return "per second" if bucket == 1 else f"per {bucket}-second bucket"


def cycle_spans(series: TimeSeries) -> list[tuple[float, float, int]]:
    spans = []
    x = series.seconds
    for users, row in zip(series.cvus, series.counts, strict=True):
        used = np.flatnonzero(row)
        if used.size:
            spans.append((float(x[used[0]]), float(x[used[-1]] + series.bucket), users))
    return spans


def shade_cycles(ax: Any, spans: list[tuple[float, float, int]]) -> None:
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
    fig, (ax,) = figure(SIZE, top=0.22 * rows)
    for i, (label, x, y) in enumerate(lines):
        marker = "o" if len(x) <= 30 else None  # a short cycle would be an invisible line
        color = CYCLE_PALETTE[i % len(CYCLE_PALETTE)]
        ax.plot(x, y, color=color, lw=1.3, marker=marker, ms=3.5, label=label)
    ax.set_ylim(bottom=0)
    thousands(ax.yaxis)
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("requests per second")
    ax.set_title(
        f"Requests per second over time ({bucket_label(bucket)})", loc="left", pad=6 + 16 * rows
    )
    legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=columns,
        borderaxespad=0.2,
        handlelength=1.4,
        columnspacing=1.2,
        fontsize=9,
    )
    return save(fig, directory, name)


def percentiles_time_chart(
    directory: str,
    name: str,
    bucket: int,
    x: Any,
    lines: list[tuple[str, Any]],
    spans: list[tuple[float, float, int]],
) -> str:
    """P50/P95/P99 of the response times per time bucket (log scale)."""
    fig, (ax,) = figure(SIZE, top=0.22)
    styles = ((COLORS["med"], 1.5), (COLORS["p95"], 1.2), (COLORS["p99"], 1.0))
    for (label, y), (color, width) in zip(lines, styles, strict=False):
        ax.plot(x, MS * np.asarray(y, float), color=color, lw=width, label=label)
    ax.set_yscale("log")
    finite = MS * np.concatenate([np.asarray(y, float) for _label, y in lines] or [np.ones(1)])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        log_ticks(ax.yaxis, float(finite.min()), float(finite.max()))
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("response time (ms, log scale)")
    shade_cycles(ax, spans)
    ax.set_title(
        f"Response time percentiles over time ({bucket_label(bucket)})", loc="left", pad=22
    )
    legend(ax, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, borderaxespad=0.2, fontsize=9)
    return save(fig, directory, name)


def distribution_chart(
    directory: str,
    name: str,
    edges: Any,
    counts: Any,
    markers: list[tuple[str, float]],
) -> str:
    """Histogram of every response time on log-spaced bins."""
    fig, (ax,) = figure(SIZE)
    edges = MS * np.asarray(edges, float)
    ax.stairs(counts, edges, fill=True, color=COLORS["box"], edgecolor=COLORS["ok"], lw=1.0)
    ax.stairs(counts, edges, color=COLORS["ok"], lw=1.0)
    ax.set_xscale("log")
    log_ticks(ax.xaxis, float(edges[0]), float(edges[-1]))
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
    legend(ax, loc="upper right")
    return save(fig, directory, name)


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
    if overall is not None and stats is not None:
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
                spans=cycle_spans(series),
            ),
        ),
        Job("distribution", distribution_chart, dict(edges=edges, counts=counts, markers=markers)),
    ]
