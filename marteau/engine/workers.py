"""Worker processes: one `ProcessRunner` per process, each with its own recorder.

Why processes: one CPython process drives about one core; a node has
several.  Why *spawn* and not fork: the parent has already imported the
test, run ``setUpBench`` and may hold threads (the test's own, the console);
forking a threaded process can copy a lock held by a thread that does not
exist in the child.  A spawned worker starts clean, imports the test module
itself (``WorkerSpec.loader``, a top-level function, so it pickles) and
talks to the parent over a `multiprocessing.Pipe`.

With one worker the runner runs in a thread of the parent instead: no
start-up cost, and state set up by ``setUpBench`` is visible to the users
as it is under FunkLoad.  The parent talks to it over the same kind of pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from marteau.engine.console import last_line
from marteau.engine.runner import ProcessRunner, TestFactory
from marteau.engine.schedule import BenchPlan

ABORT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable for a spawned process."""

    index: int
    workers: int
    plan: BenchPlan
    suite: str  # the test class name
    method: str
    path: str  # this worker's compact result file
    config: dict[str, str]
    loader: Callable[[Any], TestFactory]  # called once in the worker's process
    loader_arg: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    fuse: bool = False  # send the safety fuse's probe every second


def worker_path(base: str, index: int) -> str:
    """``<base>.w<k>.mrt``: one worker's compact file next to the node's."""
    return f"{base}.w{index}.mrt"


def serve(spec: WorkerSpec, channel: Connection, abort: threading.Event) -> None:
    """Run one worker: load the test, record into its own file, follow the parent."""
    from marteau.engine.recorder import Recorder

    try:
        make_test = spec.loader(spec.loader_arg)
    except BaseException as exc:  # reported to the parent, which prints it
        message = str(exc) if type(exc).__name__ == "MarteauError" else traceback.format_exc()
        _send(channel, ("failed", spec.index, message))
        return
    recorder = Recorder(
        spec.path, spec.config, suite=spec.suite, name=spec.method, worker=spec.index
    )
    runner = ProcessRunner(
        worker=spec.index,
        workers=spec.workers,
        plan=spec.plan,
        method=spec.method,
        make_test=make_test,
        recorder=recorder,
        channel=channel,
        abort=abort,
        fuse=spec.fuse,
    )
    try:
        runner.run()
    except BaseException:
        _send(channel, ("failed", spec.index, traceback.format_exc()))
    finally:
        recorder.recording = False
        runner.finish()
        recorder.close()
        _send(channel, ("done", spec.index))


def _send(channel: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, EOFError):
        channel.send(message)


def _child_main(spec: WorkerSpec, channel: Connection) -> None:
    """Entry point of a spawned worker process."""
    abort = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        abort.set()

    for signum in ABORT_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        serve(spec, channel, abort)
    finally:
        channel.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # A user may still be blocked in a test (or a `blocking` call's thread): do not wait.
        os._exit(0)


@dataclass
class _Worker:
    index: int
    channel: Connection
    process: Any  # multiprocessing.Process or threading.Thread
    alive: bool = True  # its channel is open


class WorkerPool:
    """The workers of one node, and the parent's end of their pipes."""

    def __init__(self, specs: list[WorkerSpec], abort: threading.Event) -> None:
        self.specs = specs
        self.abort = abort
        self.workers: list[_Worker] = []

    @property
    def in_process(self) -> bool:
        return len(self.specs) == 1

    def start(self) -> None:
        """Start every worker (they load the test, then report ``ready``)."""
        context = multiprocessing.get_context("spawn")
        for spec in self.specs:
            parent_end, child_end = multiprocessing.Pipe()
            if self.in_process:
                process: Any = threading.Thread(
                    target=self._serve_in_thread,
                    args=(spec, child_end),
                    name="marteau-worker",
                    daemon=True,
                )
            else:
                process = context.Process(
                    target=_child_main,
                    args=(spec, child_end),
                    name=f"marteau-worker-{spec.index}",
                )
            process.start()
            if not self.in_process:
                child_end.close()
            self.workers.append(_Worker(spec.index, parent_end, process))

    def _serve_in_thread(self, spec: WorkerSpec, channel: Connection) -> None:
        try:
            serve(spec, channel, self.abort)
        finally:
            channel.close()

    def send(self, index: int, message: tuple[Any, ...]) -> None:
        worker = self.workers[index]
        if worker.alive:
            try:
                worker.channel.send(message)
            except (OSError, EOFError):
                worker.alive = False

    def broadcast(self, message: tuple[Any, ...]) -> None:
        for worker in self.workers:
            self.send(worker.index, message)

    def receive(self, timeout: float) -> list[tuple[Any, ...]]:
        """Messages from any worker within ``timeout``; ``("exited", k)`` when one is gone."""
        channels = {worker.channel: worker for worker in self.workers if worker.alive}
        if not channels:
            self.abort.wait(timeout)
            return []
        messages: list[tuple[Any, ...]] = []
        # wait() gives back some of the objects it was given: here, channels
        for channel in cast(list[Connection], wait(list(channels), timeout)):
            worker = channels[channel]
            try:
                while channel.poll(0):
                    messages.append(channel.recv())
            except (OSError, EOFError):
                worker.alive = False
                messages.append(("exited", worker.index))
        return messages

    @property
    def any_alive(self) -> bool:
        return any(worker.alive for worker in self.workers)

    def join(self, timeout: float) -> None:
        """Wait for the worker processes to exit; kill what is left after ``timeout``."""
        for worker in self.workers:
            worker.process.join(timeout)
            process = worker.process
            if isinstance(process, multiprocessing.process.BaseProcess) and process.is_alive():
                process.kill()
                process.join(1.0)
            worker.channel.close()


def describe_failure(message: str) -> str:
    """A worker's failure for the console: a MarteauError message or a traceback's last line."""
    return last_line(message) if "Traceback" in message else message
