"""The monitoring agent's own cost on the host it samples.

    .venv/bin/python bench/monitor.py [--interval 1] [--seconds 60]

Runs `marteau monitor --record` (every plugin, every interface) for
``--seconds`` at ``--interval`` and reads the agent's CPU time (user +
system, from /proc/<pid>/stat) twice: after its start-up and at the end, so
that the interpreter's import is not counted. Prints the samples taken, the
CPU per sample and the share of one core; exits 1 above the target (1 % of a
core at a 1 s interval). The agent stops itself at ``--seconds`` (its
``--max-duration``): the loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.0  # percent of one core at a 1 s interval
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    marteau = str(Path(sys.executable).with_name("marteau"))
    with tempfile.TemporaryDirectory(prefix="marteau-monitor-bench-") as tmp:
        samples = Path(tmp) / "samples.jsonl"
        agent = subprocess.Popen(
            [marteau, "monitor", "--record", str(samples), "--interval", str(args.interval),
             "--max-duration", str(args.seconds)],
        )  # fmt: skip
        while not samples.exists() or len(samples.read_text().splitlines()) < 2:
            if agent.poll() is not None:
                print("the agent stopped before its first sample", file=sys.stderr)
                return 1
            time.sleep(0.05)
        first_cpu, first_wall = cpu_seconds(agent.pid), time.monotonic()
        first_count = len(samples.read_text().splitlines()) - 1
        last_cpu, last_wall = first_cpu, first_wall
        while agent.poll() is None:  # ends at its own --max-duration
            last_cpu, last_wall = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(min(args.interval, 1.0) / 2)
        lines = samples.read_text().splitlines()
        count = len(lines) - 2 - first_count  # less the header, the end line, the first ones
        stopped = json.loads(lines[-1]).get("stopped")
    used, wall = last_cpu - first_cpu, last_wall - first_wall
    share = 100.0 * used / wall if wall > 0 else 0.0
    per_sample = 1000.0 * used / count if count > 0 else 0.0
    print(f"interval {args.interval:g}s, {wall:.1f}s measured, {count} samples ({stopped})")
    print(f"agent CPU {used:.3f}s: {per_sample:.2f} ms per sample, {share:.3f}% of one core")
    target = TARGET / args.interval
    print(f"target: under {target:.2f}% of one core: {'OK' if share < target else 'ABOVE'}")
    return 0 if share < target else 1


if __name__ == "__main__":
    sys.exit(main())
