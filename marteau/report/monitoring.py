"""Monitored hosts in a report: samples given their cycle, and each cycle's averages.

The agent `marteau run` starts samples from before the first cycle to after
the last; FunkLoad's server sampled from a cycle's ``startRecord`` (before
its users start) to its ``stopRecord`` (after its sleep time), and keyed
each record ``<method>:<cycle>:<cvus>``. `keyed` gives the agent's samples
the same keys from the bench's schedule (``start_at``, ``cycles``,
``duration``, ``startup_delay``, ``cycle_time`` of the results' config):
cycle *c* runs from its staging to the next cycle's; samples outside every
cycle are left out, as FunkLoad's server left them. `cycle_averages` is
``summary.json``'s ``monitors`` (docs/report.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from marteau.engine.schedule import BenchPlan, schedule

# Counters whose per-second rate is averaged (kB/s), and the names they take.
RATES = {
    "receiveBytes": "net_in_kB_per_s",
    "transmitBytes": "net_out_kB_per_s",
    "diskReadBytes": "disk_read_kB_per_s",
    "diskWriteBytes": "disk_write_kB_per_s",
}
LEVELS = {"loadAvg1min": "load_1min"}
KNOWN = {
    "time", "host", "key", "CPUTotalJiffies", "IDLTotalJiffies", "loadAvg5min", "loadAvg15min",
    "running", "tasks", "cpus", "memTotal", "memFree", "swapTotal", "swapFree", "buffers",
    "cached", "receivePackets", "transmitPackets", "diskReads", "diskWrites", *RATES, *LEVELS,
}  # fmt: skip


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def cycle_windows(config: dict[str, str]) -> list[tuple[str, float, float]]:
    """(key, from, to) of each cycle on the bench's clock; [] when the config lacks them."""
    try:
        start = float(config["start_at"])
        cycles = tuple(int(c) for c in config["cycles"].strip("[]").split(",") if c.strip())
        plan = BenchPlan(
            cycles,
            int(float(config["duration"])),
            float(config.get("startup_delay") or 0),
            float(config.get("sleep_time") or 0),
            float(config.get("cycle_time") or 0),
        )
    except (KeyError, ValueError):
        return []
    method = config.get("method") or config.get("id") or "test"
    return [(f"{method}:{t.index}:{t.users}", t.stage, t.next) for t in schedule(plan, start)]


def keyed(samples: Sequence[dict[str, str]], config: dict[str, str]) -> list[dict[str, str]]:
    """The samples inside a cycle, each with its cycle's key (none without a schedule)."""
    windows = cycle_windows(config)
    out = []
    for sample in samples:
        when = _float(sample.get("time"))
        for key, start, end in windows:
            if start <= when < end:
                out.append({**sample, "key": key})
                break
    return out


def _cycle_of(key: str) -> tuple[int, int] | None:
    parts = str(key or "").rsplit(":", 2)
    try:
        return int(parts[-2]), int(parts[-1])
    except (IndexError, ValueError):
        return None


def _mean(values: list[float]) -> float | None:
    found = [v for v in values if math.isfinite(v)]
    return round(sum(found) / len(found), 3) if found else None


def cycle_averages(monitors: Sequence[dict[str, str]], config: dict[str, str]) -> dict[str, Any]:
    """Per host, per cycle: the samples' count and averages (see docs/report.md)."""
    hosts: dict[str, dict[tuple[int, int], list[dict[str, str]]]] = {}
    for record in monitors:
        found = _cycle_of(record.get("key", ""))
        if found is not None:
            host = record.get("host", "") or "unknown"
            hosts.setdefault(host, {}).setdefault(found, []).append(record)
    out: dict[str, Any] = {}
    for host, cycles in hosts.items():
        rows = []
        for (cycle, cvus), records in sorted(cycles.items()):
            records = sorted(records, key=lambda r: _float(r.get("time")))
            row: dict[str, Any] = {"cycle": cycle, "cvus": cvus, "samples": len(records)}
            pairs = list(zip(records, records[1:], strict=False))
            busy = [
                (_float(b.get("CPUTotalJiffies")) - _float(a.get("CPUTotalJiffies")),
                 _float(b.get("IDLTotalJiffies")) - _float(a.get("IDLTotalJiffies")))
                for a, b in pairs
            ]  # fmt: skip
            total_busy = sum(d for d, _ in busy if math.isfinite(d))
            total = total_busy + sum(i for d, i in busy if math.isfinite(d) and math.isfinite(i))
            row["cpu_percent"] = round(100.0 * total_busy / total, 2) if total > 0 else None
            for name, label in LEVELS.items():
                row[label] = _mean([_float(r.get(name)) for r in records])
            row["mem_used_kB"] = _mean(
                [
                    _float(r.get("memTotal")) - _float(r.get("memFree"))
                    - _float(r.get("buffers") or 0) - _float(r.get("cached") or 0)
                    for r in records
                ]
            )  # fmt: skip
            for name, label in RATES.items():
                dv = _float(records[-1].get(name)) - _float(records[0].get(name))
                dt = _float(records[-1].get("time")) - _float(records[0].get("time"))
                row[label] = round(dv / dt / 1000.0, 3) if dt > 0 and dv >= 0 else None
            others = sorted({k for r in records for k in r} - KNOWN)
            for name in others:  # a Prometheus query's values, by its name
                row[name] = _mean([_float(r.get(name)) for r in records])
            rows.append({k: v for k, v in row.items() if v is not None})
        out[host] = {"description": config.get(host, ""), "cycles": rows}
    return out
