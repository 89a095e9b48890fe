"""The terminal view of a run: the stage, each node's state and, during the
bench, each node's cycle, users, requests/s, errors and response-time
quantiles (p50/p95/p99 of its last 10 s; the plain line ends with them, as the
bench's own progress line does, for the service's live charts).

On a terminal it is a rich live table refreshed twice a second; elsewhere
(a log, CI, a pipe) it prints one plain line per change of stage or node
state, and a line for each progress line of a node's bench (the bench prints
one a second; the controller gets them in batches, one batch per poll); a
line that says nothing new is repeated only every few seconds. Plain lines
are never wrapped nor read as rich markup: grep and the service's live
figures read whole lines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from marteau.engine.figures import QUANTILES, format_quantiles, quantile_name

PLAIN_REPEAT_EVERY = 5.0  # seconds between two identical progress lines of a node


@dataclass
class NodeView:
    name: str
    state: str = "waiting"
    cycle: int | None = None
    users: str = ""
    rps: float | None = None
    ok: int | None = None
    failures: int | None = None
    errors: int | None = None
    quantiles: dict[float, float] = field(default_factory=dict)  # seconds, the node's last 10 s
    note: str = ""
    last_plain: float = field(default=0.0, repr=False)
    last_text: str = field(default="", repr=False)


STATE_STYLE = {
    "failed": "bold red",
    "unreachable": "bold red",
    "benching": "cyan",
    "released": "green",
    "done": "green",
}


class LiveView:
    """What `marteau run` shows while it runs."""

    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self.interactive = self.console.is_terminal if live is None else live
        self.stage = "starting"
        self.title = ""
        self.nodes: dict[str, NodeView] = {}
        self.messages: list[str] = []
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._started = time.monotonic()

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> LiveView:
        if self.interactive:
            self._live = Live(
                get_renderable=self.render,
                console=self.console,
                refresh_per_second=2,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    # -- updates ------------------------------------------------------------

    def set_stage(self, stage: str) -> None:
        with self._lock:
            if stage == self.stage:
                return
            self.stage = stage
        if not self.interactive:
            self._plain(stage)

    def message(self, text: str) -> None:
        with self._lock:
            self.messages.append(text)
            self.messages = self.messages[-6:]
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            self._plain(text)

    def _plain(self, text: str) -> None:
        """One line as given: never wrapped, never read as rich markup."""
        self.console.print(
            f"[{self._elapsed()}] {text}", highlight=False, soft_wrap=True, markup=False
        )

    def node(
        self, name: str, state: str | None = None, note: str | None = None, **progress: Any
    ) -> None:
        with self._lock:
            view = self.nodes.setdefault(name, NodeView(name))
            changed = state is not None and state != view.state
            if state is not None:
                view.state = state
            if note is not None:
                view.note = note
            if progress:
                view.cycle = progress.get("cycle", view.cycle)
                if "users" in progress:
                    view.users = f"{progress['users']}/{progress.get('cycle_users', '?')}"
                view.rps = progress.get("rps", view.rps)
                view.ok = progress.get("ok", view.ok)
                view.failures = progress.get("failures", view.failures)
                view.errors = progress.get("errors", view.errors)
                view.quantiles = {
                    q: progress[key]
                    for q in QUANTILES
                    if isinstance(progress.get(key := quantile_name(q)), (int, float))
                }
            if self.interactive:
                return
            now = time.monotonic()
            if changed:
                text = f"{name}: {view.state}" + (f" ({view.note})" if view.note else "")
            elif progress:
                text = f"{name}: {self._progress_text(view)}"
                if text == view.last_text and now - view.last_plain < PLAIN_REPEAT_EVERY:
                    return
            else:
                return
            view.last_plain = now
            view.last_text = text
        self._plain(text)

    # -- rendering ----------------------------------------------------------

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._started:6.1f}s"

    @staticmethod
    def _progress_text(view: NodeView) -> str:
        parts = []
        if view.cycle is not None:
            parts.append(f"cycle #{view.cycle} users {view.users}")
        if view.rps is not None:
            parts.append(f"{view.rps:.0f} req/s")
        if view.ok is not None:
            parts.append(f"{view.ok} ok, {view.failures} failures, {view.errors} errors")
        if view.quantiles:
            parts.append(format_quantiles(view.quantiles))
        return ", ".join(parts) or view.state

    def render(self) -> Group:
        with self._lock:
            table = Table(expand=False, box=None, pad_edge=False)
            for column in (
                "node",
                "state",
                "cycle",
                "users",
                "req/s",
                "tests ok",
                "failures",
                "errors",
                "p95",
                "",
            ):
                table.add_column(
                    column, justify="right" if column not in ("node", "state", "") else "left"
                )
            for view in self.nodes.values():
                table.add_row(
                    view.name,
                    Text(view.state, style=STATE_STYLE.get(view.state, "")),
                    "" if view.cycle is None else str(view.cycle),
                    view.users,
                    "" if view.rps is None else f"{view.rps:.0f}",
                    "" if view.ok is None else str(view.ok),
                    "" if view.failures is None else str(view.failures),
                    Text(
                        "" if view.errors is None else str(view.errors),
                        style="red" if view.errors else "",
                    ),
                    format_quantiles({0.95: view.quantiles[0.95]}).removeprefix("p95 ")
                    if 0.95 in view.quantiles
                    else "",
                    Text(view.note, style="dim"),
                )
            header = Text.assemble(
                ("marteau run ", "bold"),
                (self.title + "  ", ""),
                ("stage: ", "dim"),
                (self.stage, "bold cyan"),
                (f"  {self._elapsed().strip()}", "dim"),
            )
            return Group(header, table)
