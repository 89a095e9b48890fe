"""The sampling loop: every `interval` seconds, within a duration and a count bound.

One loop serves both shapes of the agent: FunkLoad's server samples while a
bench has a key open (`active`), the record mode (`marteau monitor
--record`, what `marteau run` starts on the monitored hosts) samples from
its start to its stop. Either stops after `max_duration` seconds or
`max_samples` samples even if nobody stops it: an agent forgotten on a
target never runs, nor grows, without end.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marteau.errors import MarteauError
from marteau.monitor.sampler import Sampler

MIN_INTERVAL = 0.1  # seconds: below this the agent would cost the target more than it tells
MAX_DURATION = 7 * 86400.0  # seconds: the highest bound a conf or an option may set
MAX_SAMPLES = 1_000_000  # the highest count bound (a sample line is ~0.4 kB)
FORMAT = 1  # the samples file's version (its first line)


@dataclass(frozen=True)
class Bounds:
    """How often and how long the agent samples."""

    interval: float = 1.0
    max_duration: float = 86400.0
    max_samples: int = 100_000

    def check(self, where: str) -> Bounds:
        """These bounds, or MarteauError naming `where` and the value out of range."""
        if not MIN_INTERVAL <= self.interval <= 3600:
            raise MarteauError(
                f"{where}: interval: expected {MIN_INTERVAL} to 3600 seconds, got {self.interval:g}"
            )
        if not 0 < self.max_duration <= MAX_DURATION:
            raise MarteauError(
                f"{where}: max_duration: expected 1 to {MAX_DURATION:.0f} seconds, "
                f"got {self.max_duration:g}"
            )
        if not 0 < self.max_samples <= MAX_SAMPLES:
            raise MarteauError(
                f"{where}: max_samples: expected 1 to {MAX_SAMPLES}, got {self.max_samples}"
            )
        return self


def sample_loop(
    sampler: Sampler,
    host: str,
    bounds: Bounds,
    stop: threading.Event,
    emit: Callable[[dict[str, str]], None],
    active: Callable[[], bool] = lambda: True,
) -> str:
    """Sample on a fixed grid (a slow sample does not shift the next ones) until `stop`
    is set or a bound is reached; the reason it ended."""
    started = time.monotonic()
    deadline = started + bounds.max_duration
    count = 0
    tick = started
    while not stop.is_set():
        now = time.monotonic()
        if now >= deadline:
            return f"max duration {bounds.max_duration:g}s reached"
        if active():
            if count >= bounds.max_samples:
                return f"max samples {bounds.max_samples} reached"
            emit(sampler.sample(host))
            count += 1
        tick += bounds.interval
        if tick <= now:  # late (a suspended host): the next point of the grid
            tick += ((now - tick) // bounds.interval + 1) * bounds.interval
        stop.wait(max(0.0, min(tick, deadline) - time.monotonic()))
    return "stopped"


def record(
    path: str,
    host: str,
    bounds: Bounds,
    sampler: Sampler,
    pid_path: str | None = None,
) -> str:
    """Write a samples file at `path` (JSON lines: a header, one line per sample, the
    reason it ended) until SIGTERM, SIGINT or SIGHUP, or a bound; the reason."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {
        s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    if pid_path:
        with open(pid_path, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    try:
        with open(path, "w", encoding="utf-8") as out:
            header = {
                "marteau_monitor": FORMAT,
                "host": host,
                "interval": bounds.interval,
                "plugins": sorted(sampler.plugins),
                "interface": sampler.interface,
                "pid": os.getpid(),
            }
            out.write(json.dumps(header) + "\n")

            def emit(sample: dict[str, str]) -> None:
                out.write(json.dumps(sample, separators=(",", ":")) + "\n")
                out.flush()  # a killed agent keeps every sample taken

            reason = sample_loop(sampler, host, bounds, stop, emit)
            out.write(json.dumps({"stopped": reason, "time": repr(time.time())}) + "\n")
        return reason
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pid_path and os.path.exists(pid_path):
            os.remove(pid_path)
