"""Drawing the report's charts: `Job` (a chart to draw) and `Rendering` (a process pool).

Every chart is a `Job`, a module-level drawing function and plain
arguments, so that a spawned worker process can draw it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from marteau.errors import MarteauError
from marteau.report.chart_style import pyplot


@dataclass
class Job:
    """One chart to draw: a module-level drawing function and its (plain) arguments;
    both pickle, so a worker process can draw it."""

    name: str
    function: Callable[..., str]
    kwargs: dict[str, Any]


def _draw(directory: str, job: Job) -> str:
    return job.function(directory, job.name, **job.kwargs)


def _warm() -> None:
    """A worker's first task: import matplotlib while the parent is still planning."""
    pyplot()


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
