"""The charts of the monitored hosts: one per plugin group, users over time, other values.

From FunkLoad's ``<monitor>`` records (attribute strings), named
``<host>_<Plugin>`` as FunkLoad's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from marteau.report.chart_pool import Job
from marteau.report.chart_style import CYCLE_PALETTE, SIZE, figure, legend, save, thousands
from marteau.report.monitoring import KNOWN
from marteau.report.time_charts import TimeSeries, cycle_spans, shade_cycles

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
    by_host: dict[str, list[dict[str, str]]] = {}
    for record in monitors:
        by_host.setdefault(record.get("host", "") or "unknown", []).append(record)
    start = min((_number(m.get("time")) for m in monitors), default=math.nan)
    aligned = series is not None
    if series is not None:
        start = float(series.start)
    spans = cycle_spans(series) if series is not None else []
    hosts = []
    for host, records in by_host.items():
        jobs = _host_jobs(host, _Records(records), start)
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


class _Records:
    """One host's monitor records, in time order, as columns of numbers."""

    def __init__(self, records: list[dict[str, str]]) -> None:
        self.records = sorted(records, key=lambda m: _number(m.get("time")))

    def column(self, name: str) -> Any:
        return np.array([_number(m.get(name)) for m in self.records], float)

    def has(self, *names: str) -> bool:
        return any(name in m for m in self.records for name in names)


def _host_jobs(host: str, records: _Records, start: float) -> list[Job]:
    """The charts of one host, in the report's order (users over time last)."""
    x = records.column("time") - (start if math.isfinite(start) else 0.0)
    prefix = _safe_name(host)
    jobs = []
    if records.has("CPUTotalJiffies", "loadAvg1min"):
        jobs.append(_cpu_job(host, prefix, records, x))
    if records.has("memFree", "swapFree"):
        jobs.append(_memory_job(host, prefix, records, x))
    for plugin, what, counters in (
        ("MonitorNetwork", "network", (("in", "receiveBytes"), ("out", "transmitBytes"))),
        ("MonitorDisk", "disk", (("read", "diskReadBytes"), ("write", "diskWriteBytes"))),
    ):
        if not records.has(*(name for _, name in counters)):
            continue
        seconds = records.column("time")
        lines = [(label, _rate(records.column(name), seconds) / 1000.0) for label, name in counters]
        jobs.append(
            Job(
                f"{prefix}_{plugin}",
                monitor_chart,
                dict(title=f"{host}: {what} traffic", x=x, panels=[("kB/s", lines)]),
            )
        )
    others = sorted({name for m in records.records for name in m} - KNOWN)
    if others:
        jobs.append(
            Job(
                f"{prefix}_MonitorOther",
                monitor_chart,
                dict(
                    title=f"{host}: other values",
                    x=x,
                    panels=[(name, [(name, records.column(name))]) for name in others[:8]],
                    floor=False,
                ),
            )
        )
    cvus = np.array([_key_cvus(m.get("key", "")) for m in records.records], float)
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
    return jobs


def _cpu_job(host: str, prefix: str, records: _Records, x: Any) -> Job:
    """Load averages, and FunkLoad's CPU usage: busy jiffies over busy + idle ones."""
    busy, idle = records.column("CPUTotalJiffies"), records.column("IDLTotalJiffies")
    cpu = np.full(x.size, np.nan)
    if x.size > 1:
        db, di = np.diff(busy), np.diff(idle)
        with np.errstate(invalid="ignore", divide="ignore"):
            cpu[1:] = np.where(db + di > 0, 100.0 * db / (db + di), np.nan)
    loads = [
        (f"load {n}", records.column(f"loadAvg{n}"))
        for n in ("1min", "5min", "15min")
        if records.has(f"loadAvg{n}")
    ]
    return Job(
        f"{prefix}_MonitorCPU",
        monitor_chart,
        dict(
            title=f"{host}: load average and CPU usage",
            x=x,
            panels=[
                ("load average", loads),
                ("CPU usage (%)", [("CPU", cpu)] if records.has("CPUTotalJiffies") else []),
            ],
        ),
    )


def _memory_job(host: str, prefix: str, records: _Records, x: Any) -> Job:
    """Memory and swap used, relative to the start: a missing total (constant) or cache counts as 0."""
    column = records.column
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
        if records.has(field)
    ]
    return Job(
        f"{prefix}_MonitorMemFree",
        monitor_chart,
        dict(
            title=f"{host}: memory and swap used, relative to the start",
            x=x,
            panels=[("used (kB)", lines)],
            floor=False,
        ),
    )


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
    fig, axes = figure((SIZE[0], 3.2 + 1.6 * (len(panels) - 1)), len(panels))
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
            shade_cycles(ax, spans)
        if floor:
            ax.set_ylim(bottom=0)
        thousands(ax.yaxis)
        if steps:
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        legend(ax, loc="best")
    axes[0].set_title(title, loc="left")
    axes[-1].set_xlabel(
        "time since the first request (s)" if aligned else "time since the first monitor record (s)"
    )
    return save(fig, directory, name)
