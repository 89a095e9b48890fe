"""The report's charts: FunkLoad's (FUNKLOAD.md §5.3) and Marteau's, as PNG files.

Rendered with matplotlib's Agg backend (no display, no gnuplot).  Why PNG
rather than SVG: ``index.rst`` (FunkLoad's layout, §5.4) links
``<name>.png``; a PNG's size does not grow with the data (an SVG of a
5,000-point time series is a 5,000-vertex path); and the Agg rasteriser is
the fastest matplotlib backend.  They are 864 pixels wide, the size the
page shows them at on a laptop; on a phone they scroll sideways rather
than shrink their text.

FunkLoad's charts, here, from the per-cycle statistics (a few points each):
``tests``, ``pages_spps``, ``pages``, ``requests_rps``, ``requests`` and
one ``request_<step>.<number>`` per request of the test; the diff and trend
charts (`comparison_chart`, `trend_chart`).  The charts over wall-clock time
are `time_charts`', the monitored hosts' `monitor_charts`', the look they
share `chart_style`'s.  Every chart is a `Job` (a module-level drawing
function and plain arguments), drawn by `chart_pool.Rendering`: in worker
processes on a multi-core machine, else in-process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from marteau.report.chart_pool import Job, Rendering
from marteau.report.chart_style import (
    COLORS,
    CYCLE_PALETTE,
    MS,
    RATING_COLORS,
    SIZE,
    SMALL,
    cycle_axis,
    figure,
    legend,
    save,
    thousands,
)
from marteau.report.stats import APDEX_RATINGS, BenchStats, apdex_label
from marteau.report.time_charts import aggregate, time_jobs

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
    fig, axes = figure((SIZE[0], 3.0 + 1.25 * (rows - 1)), rows, ratios)
    x = np.arange(len(cvus))
    ax = axes[0]
    ax.plot(x, rate, "o-", color=COLORS["ok"], lw=2, label=rate_label, zorder=3)
    if max_rate is not None:
        ax.plot(x, max_rate, "s--", color=COLORS["max"], lw=1.2, ms=4, label=max_label)
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    thousands(ax.yaxis)
    ax.set_title(title, loc="left")
    legend(ax, loc="upper left")
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
    cycle_axis(axes[-1], cvus)
    return save(fig, directory, name)


def candle_chart(
    directory: str, name: str, title: str, candles: list[dict[str, float]], small: bool = False
) -> str:
    """Whiskers MIN..P95, box P10..P90, median bar, AVG and P99 markers, per CUs."""
    fig, (ax,) = figure(SMALL if small else SIZE, top=0.3)
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
    thousands(ax.yaxis)
    ax.set_title(title, loc="left", pad=24)
    cycle_axis(ax, [int(c["cvus"]) for c in candles])
    # the legend in a row between the title and the plot, never over a candle
    legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=6,
        borderaxespad=0.2,
        handlelength=1.4,
        columnspacing=1.2,
        fontsize=9,
    )
    return save(fig, directory, name)


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


def plan(stats: BenchStats, responses: Any = None) -> list[Job]:
    """Every chart of a bench report, in the report's order."""
    return cycle_jobs(stats) + time_jobs(aggregate(responses), stats) + step_jobs(stats)


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

    fig, (ax, delta_ax) = figure((SIZE[0], 4.9), 2, [3, 1.4], top=0.25)
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
    thousands(ax.yaxis)
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
    cycle_axis(delta_ax, cvus)
    return save(fig, directory, name)


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
    fig, (ax,) = figure((SIZE[0], 4.3), top=0.22)
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
    legend(
        ax,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=max(1, len(lines)),
        borderaxespad=0.2,
        fontsize=9,
    )
    return save(fig, directory, name)
