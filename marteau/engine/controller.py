"""The parent side of a bench: hooks, workers, console, and the node's result files.

The parent never runs a virtual user itself (with one worker, the worker is
a thread of the parent).  It runs FunkLoad's hooks on the main test
instance at the planned instants (`marteau.engine.schedule` documents the
schedule), follows the workers' counters for the console, and at the end
(or on SIGTERM/SIGINT, or when the safety fuse trips: `marteau.engine.fuse`)
combines the worker files into the node's ``.mrt`` and exports FunkLoad XML
(`marteau.engine.bench_end`).  What it is given and what it returns are in
`marteau.engine.bench_contract`.  Each worker flushes its file every second and at every cycle end, so a
killed bench keeps every finished cycle.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from marteau.engine.bench_contract import BenchSetup, Outcome
from marteau.engine.bench_end import print_summary, write_results
from marteau.engine.console import Console, last_line, now_iso, status_word
from marteau.engine.figures import DurationWindow, LiveFigures, format_quantiles
from marteau.engine.fuse import Fuse, fuse_line
from marteau.engine.schedule import CycleTimes, schedule
from marteau.engine.workers import ABORT_SIGNALS, WorkerPool, describe_failure
from marteau.errors import MarteauError

START_MARGIN = 0.25  # seconds between "armed" and cycle 0 without a start instant given
READY_TIMEOUT = 120.0  # a worker that cannot import the test in this time is broken
START_POLL = 0.02  # seconds between two reads of --start-file
# A recording window that opened later than planned by more than this lost load: the
# protocol's own lag (a message, a timer on a busy machine) stays well below it.
LOST_TOLERANCE = 0.5
DONE_TIMEOUT = 15.0  # after the last cycle or an abort, for workers to flush and exit
# A signal repeated sooner is the same stop delivered twice (a process-group kill that
# `timeout -k` also forwards to its group), not a second Ctrl-C asking to die at once.
REPEAT_GRACE = 1.0
# Only a person's signals ask twice to die at once. SIGTERM and SIGHUP come from
# automation (`marteau run` stopping the nodes, `timeout`, a closed session), which
# may send them again while the bench is writing its results and has SIGKILL behind
# (`timeout -k`, the role's stop): dying on a repeat would lose what ran.
ESCALATING_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT})
PHASES = ("staging", "recording", "stopping")  # of a cycle, as the live figures name them


def read_start_file(path: str) -> float | None:
    """The epoch instant a start file holds, or None while it holds none (yet).

    The controller writes it whole (a rename), so anything else there is a bug
    worth stopping for rather than waiting out the timeout.
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise MarteauError(f"start file {path} holds {text[:32]!r}, not an epoch instant")
    return value


class BenchController:
    """Runs one bench on this node; `run` returns the `Outcome`.

    ``figures``: where to publish the live figures under the name ``node``
    (`--metrics-port`), besides the console's progress line.
    """

    def __init__(
        self,
        setup: BenchSetup,
        console: Console,
        figures: LiveFigures | None = None,
        node: str = "",
    ) -> None:
        self.setup = setup
        self.console = console
        self.figures = figures
        self.node = node
        self._durations = DurationWindow()
        self.plan = setup.plan
        self.abort = threading.Event()
        self.outcome = Outcome()
        self.pool = WorkerPool(setup.specs, self.abort)
        self.start: float | None = None
        self._ready: set[int] = set()
        self._armed: set[int] = set()
        self._opened: dict[int, dict[int, float | None]] = {}  # cycle -> worker -> opened
        self._done: set[int] = set()
        self._gone: set[int] = set()
        self._failed: dict[int, str] = {}
        self._joined: dict[int, set[int]] = {}
        self._progress: dict[int, tuple[int, ...]] = {}
        self._arrivals: dict[int, list[int]] = {}  # open model: cycle -> intended, dropped, peak
        self._cycle: CycleTimes | None = None
        self._mid_done = False
        self._last_rate = (0.0, 0)
        self._rate = 0.0
        self._phase = -1
        self._set_up = False
        self._monitor_key: str | None = None  # the monitor key of a cycle not yet stopped
        fuse = setup.fuse
        self._fuse = Fuse(fuse) if fuse is not None and fuse.enabled else None

    # -- the bench ------------------------------------------------------------

    def run(self) -> Outcome:
        previous = self._install_signals()
        try:
            self._header()
            self.pool.start()
            try:
                self._bench()
            finally:
                self._stop_workers()
                # An interrupted cycle's recorded tests are in the results: count them too.
                self._tally()
                if self._set_up:  # cleanup even after an abort or a failed hook
                    self.console.line()
                    self._hook("tearDownBench")
            write_results(self.setup, self.outcome, self.console, self._monitor_key)
            print_summary(self.setup, self.outcome, self.console)
        finally:
            # Stopped by a signal, the process exits next with 128 + its number: a late
            # repeat of the stop (automation sends one more) must not kill it on its way
            # out, in interpreter shutdown where no Python handler runs: ignored from here.
            stopped = self.outcome.signum is not None
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_IGN if stopped else handler)
        return self.outcome

    def _bench(self) -> None:
        console = self.console
        console.title("Benching")
        if not self._hook("setUpBench"):
            return
        self._set_up = True
        if not self._pump(lambda: self._ready | self._gone >= self._all, READY_TIMEOUT):
            return
        if not self._ready | self._gone >= self._all:
            raise MarteauError(f"workers not ready after {READY_TIMEOUT:.0f}s")
        if self._failed:
            index, message = next(iter(self._failed.items()))
            raise MarteauError(f"worker {index} failed to start: {describe_failure(message)}")
        times: list[CycleTimes] = []
        rates = self.plan.rates
        for index, users in enumerate(self.plan.cycle_users):
            title = (
                f"Cycle #{index} at {rates[index]:g} tests/s, at most {users} virtual users"
                if rates
                else f"Cycle #{index} with {users} virtual users"
            )
            console.line()
            console.title(title, "-")
            if users < self.plan.cycles[index]:
                console.line(
                    f"* Max users: the cycle asks {self.plan.cycles[index]} users, "
                    f"--max-users {self.plan.max_users} runs {users}"
                )
            if not self._hook("setUpCycle"):
                return
            if index == 0:
                times = self._start()
                if not times:
                    return
            cycle = times[index]
            key = f"{self.setup.config.get('method', '')}:{index}:{users}"
            if self.setup.monitor is not None:  # FunkLoad's order: after setUpCycle
                self.setup.monitor.start(key)
                self._monitor_key = key
            console.line(f"* Current time: {now_iso()}")
            if rates:
                console.line(self._arrivals_line(index, cycle))
            else:
                console.line(
                    f"* Starting threads: {users} users, {self.plan.startup_delay}s apart, "
                    f"from {now_iso(cycle.stage)}"
                )
            self.pool.broadcast(("go", index))
            if not self._follow_cycle(cycle):
                return
            late = time.time() - cycle.next
            waiting = late <= 0.05 and bool(self.plan.cycle_time)
            if waiting:
                console.partial(f"* Waiting cycle sleeptime {self.plan.cycle_time}s: ... ")
            elif late > 0.05 and index + 1 < len(self.plan.cycles):
                console.line(
                    f"* Cycle sleeptime {self.plan.cycle_time}s already over: cycle "
                    f"#{index + 1} starts {late:.2f}s late (its window does not move)."
                )
            if not self._pump(lambda: False, cycle.next - time.time()):
                return
            if waiting:
                console.line("done.")
            if self.setup.monitor is not None:
                self.setup.monitor.stop(key)
                self._monitor_key = None
            if not self._hook("tearDownCycle"):
                return
            self._cycle_result(cycle)

    def _start(self) -> list[CycleTimes]:
        """Arm, decide the start instant and tell the workers: the schedule (empty: none)."""
        start = self._arm()
        if start is None:
            return []
        self.start = start
        self.setup.config["start_at"] = repr(start)
        self.pool.broadcast(("start", start))
        # Also in a worker's own file, in case the parent dies before combining.
        self.pool.send(0, ("config", "start_at", repr(start)))
        if start - time.time() > 1:
            self.console.line(f"* Waiting for the start instant: {now_iso(start)}")
        return schedule(self.plan, start)

    def _arm(self) -> float | None:
        """Build cycle 0's users in every worker, then decide the start instant (None: none).

        Alone (no start given, or `--start-at`) a start instant already past
        is moved to now: the bench says so and its windows are not those asked
        for.  In a run (`--start-file`) the instant is shared with other nodes:
        the windows keep it, and each cycle says what it lost.
        """
        self.pool.broadcast(("arm",))
        if not self._pump(lambda: self._armed | self._gone >= self._all, READY_TIMEOUT):
            return None
        if not self._armed | self._gone >= self._all:
            raise MarteauError(f"workers not armed after {READY_TIMEOUT:.0f}s")
        if self._failed:
            index, message = next(iter(self._failed.items()))
            raise MarteauError(f"worker {index} failed to arm: {describe_failure(message)}")
        setup = self.setup
        if setup.start_file is not None:
            start = self._wait_start_file(setup.start_file, setup.start_timeout)
            if start is None:
                return None
        else:
            start = setup.start_at or time.time() + START_MARGIN
        late = time.time() - start
        if late <= LOST_TOLERANCE:
            return start
        if setup.start_file is not None:
            self._lose(f"started {late:.1f}s after the shared start instant")
            return start
        self._lose(f"--start-at was {late:.1f}s in the past: started now, {late:.1f}s late")
        return time.time() + START_MARGIN

    def _arrivals_line(self, index: int, cycle: CycleTimes) -> str:
        plan = self.plan
        node, nodes = plan.share
        kind = "Poisson" if plan.poisson else "constant"
        share = f" (this node's share: 1/{nodes}, node {node})" if nodes > 1 else ""
        ramp = ""
        if plan.ramp:
            previous = plan.rates[index - 1] if index else 0.0
            ramp = f", ramp from {previous:g}/s over {plan.ramp:g}s"
        return (
            f"* Arrivals: {plan.rates[index]:g} tests/s{share}, {kind}{ramp}, "
            f"from {now_iso(cycle.stage)}"
        )

    def _wait_start_file(self, path: str, timeout: float) -> float | None:
        """Say "armed" (``<path>.ready``), then wait for ``path`` to hold the start instant."""
        marker = path + ".ready"
        with open(marker + ".tmp", "w") as handle:
            handle.write(f"{time.time():.3f}\n")
        os.replace(marker + ".tmp", marker)
        self.console.line(f"* Armed: waiting for the start instant in {path}")
        found: list[float] = []

        def arrived() -> bool:
            value = read_start_file(path)
            if value is not None:
                found.append(value)
            return bool(found)

        if not self._pump(arrived, timeout, poll=START_POLL):
            return None
        if not found:
            self._lose(f"no start instant in {path} within {timeout:g}s: no cycle ran")
            return None
        return found[0]

    def _lose(self, text: str) -> None:
        """Load lost or shifted: a warning now, and in the results, the summary and the exit."""
        self.outcome.lost.append(text)
        self.console.line(f"* Warning: {text}")

    @property
    def _all(self) -> set[int]:
        return {spec.index for spec in self.setup.specs}

    def _follow_cycle(self, cycle: CycleTimes) -> bool:
        """Pump until every worker joined ``cycle``; midCycle at its planned instant."""
        self._cycle = cycle
        self._mid_done = False
        self._progress = {}
        self._joined[cycle.index] = set()
        self._last_rate = (time.time(), 0)
        self._rate = 0.0
        self._phase = -1
        console = self.console
        console.line(
            f"* Logging for {self.plan.duration}s "
            f"(from {now_iso(cycle.open)[11:19]} until {now_iso(cycle.close)[11:19]}):"
        )

        def joined() -> bool:
            return self._joined[cycle.index] | self._gone >= self._all

        ok = self._pump(joined, None)
        self._cycle = None
        if ok:
            waited = max(time.time() - cycle.close, 0.0)
            console.line(f"* Waiting end of threads: done, {waited:.2f}s after the window.")
        return ok

    def _tally(self) -> tuple[int, int, int, int]:
        """Add the current cycle's counts (ok, failures, errors, responses) to the outcome."""
        ok = failures = errors = responses = 0
        for _, *counts in self._progress.values():
            ok += counts[0]
            failures += counts[1]
            errors += counts[2]
            responses += counts[3]
        out = self.outcome
        out.successes += ok
        out.failures += failures
        out.errors += errors
        out.responses += responses
        self._progress = {}
        return ok, failures, errors, responses

    def _cycle_result(self, cycle: CycleTimes) -> None:
        ok, failures, errors, responses = self._tally()
        if self.figures is not None:
            self.figures.update(
                self.node,
                cycle=cycle.index,
                phase="done",
                users=cycle.users,
                cycle_users=cycle.users,
                rps=0.0,
                counts=(ok, failures, errors, responses),
            )
        self.outcome.cycles_done += 1
        duration = self.plan.duration
        lost = max(
            (
                duration if when is None else min(max(when - cycle.open, 0.0), duration)
                for when in self._opened.pop(cycle.index, {}).values()
            ),
            default=0.0,
        )
        if lost > LOST_TOLERANCE:
            self._lose(
                f"cycle #{cycle.index} recorded {duration - lost:.1f}s of its {duration}s "
                f"window: it opened {lost:.1f}s late"
            )
        if not ok + failures + errors:
            self._lose(f"cycle #{cycle.index}: no test finished in its {duration}s window")
        if self.plan.rates:
            self._arrivals_result(cycle)
        word = status_word(ok, failures, errors)
        self.console.line(f"* End of cycle, {time.time() - cycle.stage:.2f}s elapsed.")
        self.console.line(
            f"* Cycle result: {self.console.status(word)}, {ok} success, "
            f"{failures} failure, {errors} errors."
        )

    def _arrivals_result(self, cycle: CycleTimes) -> None:
        """The open model's counts of a cycle; dropped iterations are a warning."""
        intended, dropped, peak = self._arrivals.pop(cycle.index, [0, 0, 0])
        self.console.line(
            f"* Arrivals in the window: {intended} intended, {dropped} dropped, "
            f"up to {peak} of {cycle.users} users in use"
        )
        if dropped:
            text = (
                f"cycle #{cycle.index} dropped {dropped} of {intended} iterations "
                f"({100.0 * dropped / intended:.2f}%): every one of its {cycle.users} users was "
                "busy (raise --max-users, or the target is too slow for this rate)"
            )
            self.outcome.dropped.append(text)
            self.console.line(f"* Warning: {text}")

    # -- hooks ----------------------------------------------------------------

    def _hook(self, name: str) -> bool:
        """Run a FunkLoad hook on the main instance; a failing hook ends the bench."""
        method = getattr(self.setup.hooks, name, None)
        if method is None:
            return not self.abort.is_set()
        self.console.partial(f"* {name} hook: ... ")
        try:
            if name == "midCycle":
                assert self._cycle is not None
                method(self._cycle.index, self._cycle.users)
            else:
                method()
        except Exception:
            text = traceback.format_exc()
            self.outcome.hook_error = f"{name} failed: {last_line(text)}"
            self.console.line("FAILED")
            self.console.line(text.rstrip())
            self.abort.set()
            return False
        self.console.line("done.")
        return not self.abort.is_set()

    # -- following the workers ------------------------------------------------

    def _pump(
        self,
        done: Callable[[], bool],
        timeout: float | None,
        *,
        abortable: bool = True,
        poll: float = 0.2,
    ) -> bool:
        """Handle worker messages until ``done()`` or ``timeout``; False on abort."""
        deadline = None if timeout is None else time.time() + timeout
        next_live = next_fuse = 0.0
        while True:
            if abortable and self.abort.is_set():
                return False
            if done():
                return True
            now = time.time()
            if deadline is not None and now >= deadline:
                return True
            cycle = self._cycle
            if cycle is not None and not self._mid_done and now >= cycle.mid:
                self._mid_done = True
                if not self._hook("midCycle"):
                    return False
            if cycle is not None and now >= next_live:
                next_live = now + 1.0
                self._show_progress(cycle, now)
            if abortable and self._fuse is not None and now >= next_fuse:
                next_fuse = now + 1.0
                self._check_fuse(now)
            wait = poll
            if deadline is not None:
                wait = min(wait, deadline - now)
            if cycle is not None and not self._mid_done:
                wait = min(wait, cycle.mid - now)
            for message in self.pool.receive(max(wait, 0.0)):
                self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "ready":
            self._ready.add(index)
        elif kind == "armed":
            self._armed.add(index)
        elif kind == "progress":  # worker, cycle, started, ok, failures, errors, responses,
            # durations, weight
            if self._cycle is not None and message[2] == self._cycle.index:
                self._progress[index] = tuple(message[3:8])
                self._durations.add(time.time(), message[8], message[9])
        elif kind == "joined":  # worker, cycle, ok, failures, errors, responses, opened
            self._joined.setdefault(message[2], set()).add(index)
            self._opened.setdefault(message[2], {})[index] = message[7]
            if len(message) > 8 and message[8] is not None:
                total = self._arrivals.setdefault(message[2], [0, 0, 0])
                for slot, value in enumerate(message[8]):
                    total[slot] += value
            started = self._progress.get(index, (0,))[0]
            self._progress[index] = (started, *message[3:7])
        elif kind == "problem":
            _, _, problem, text = message
            if problem not in self.outcome.problems:
                self.outcome.problems[problem] = text
                self.console.line(f"* First {problem}: {last_line(text)}")
        elif kind == "warning":
            self.console.line(f"* Warning: {message[2]}")
        elif kind == "fuse":
            if self._fuse is not None:
                self._fuse.add(index, time.time(), message[2])
        elif kind == "failed":
            self._failed[index] = message[2]
            self._gone.add(index)
            if self._ready >= self._all or index in self._ready:
                self.console.line(f"* Worker {index} failed: {describe_failure(message[2])}")
        elif kind == "done":
            self._done.add(index)
        elif kind == "exited":
            if index not in self._done and index not in self._failed:
                self.console.line(f"* Warning: worker {index} exited unexpectedly")
            self._gone.add(index)
            if self._fuse is not None:
                self._fuse.forget(index)

    def _check_fuse(self, now: float) -> None:
        """Stop the bench, as a signal would, when the safety fuse trips."""
        assert self._fuse is not None
        reason = self._fuse.check(now)
        if reason is None or self.abort.is_set():
            return
        self.outcome.fuse = reason
        self.console.line(fuse_line(reason))
        self.abort.set()

    def _show_progress(self, cycle: CycleTimes, now: float) -> None:
        started = ok = failures = errors = responses = 0
        for values in self._progress.values():
            started += values[0]
            ok += values[1]
            failures += values[2]
            errors += values[3]
            responses += values[4]
        last_time, last_responses = self._last_rate
        if now - last_time >= 0.9:
            self._rate = max(responses - last_responses, 0) / (now - last_time)
            self._last_rate = (now, responses)
        if now < cycle.open:
            phase, text = 0, "staging"
        elif now < cycle.close:
            phase, text = 1, f"recording {now - cycle.open:3.0f}s/{self.plan.duration}s"
        else:
            phase, text = 2, "stopping"
        changed = phase != self._phase
        self._phase = phase
        quantiles = self._durations.quantiles(now)
        line = (
            f"cycle #{cycle.index}  users {started}/{cycle.users}  {text}  "
            f"tests {ok} ok, {failures} failures, {errors} errors  {self._rate:.0f} req/s  "
            f"{responses} responses"
        )
        if quantiles:
            line += "  " + format_quantiles(quantiles)
        self.console.live(line, force=changed)
        if self.figures is not None:
            self.figures.update(
                self.node,
                cycle=cycle.index,
                phase=PHASES[phase],
                users=started,
                cycle_users=cycle.users,
                rps=self._rate,
                counts=(ok, failures, errors, responses),
                quantiles=quantiles,
            )

    # -- end, signals, files --------------------------------------------------

    def _stop_workers(self) -> None:
        if self.abort.is_set():
            self.pool.broadcast(("stop",))
        self._cycle = None
        self._pump(lambda: self._done | self._gone >= self._all, DONE_TIMEOUT, abortable=False)
        self.pool.join(5.0)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous

        first = 0.0

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal first
            if self.outcome.signum is None:
                self.outcome.signum = signum
                first = time.monotonic()
                self.abort.set()
                return
            if signum not in ESCALATING_SIGNALS or time.monotonic() - first < REPEAT_GRACE:
                return
            signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C: really die
            os.kill(os.getpid(), signum)

        for signum in ABORT_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    def _header(self) -> None:
        console = self.console
        setup = self.setup
        console.line("=" * 72)
        console.line(f"Benching {setup.config.get('class')}.{setup.config.get('method')}")
        console.line("=" * 72)
        console.line(setup.description)
        console.line()
        console.title("Configuration")
        console.line(f"* Current time: {now_iso()}")
        for text in setup.header:
            console.line(text)
        console.line()
