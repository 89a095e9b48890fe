"""The end of a bench on a node: its result files, then the summary on the console.

Each worker wrote its own ``.mrt``; the parent adds its own part (the
config, with what the bench went through, and the monitors' samples), then
combines them into the node's file and exports FunkLoad's XML.  A failure
there keeps the worker files and says where they are: what ran is never
lost to a failed combine.
"""

from __future__ import annotations

import json
import os
import signal

from marteau.engine.bench_contract import BenchSetup, Outcome
from marteau.engine.console import Console, last_line, status_word
from marteau.engine.fuse import fuse_line
from marteau.errors import MarteauError
from marteau.results.compact import LOST_KEY, CompactWriter, combine
from marteau.results.funkload_writer import export_xml


def write_results(
    setup: BenchSetup, outcome: Outcome, console: Console, monitor_key: str | None
) -> None:
    """Combine the worker files into the node file, then export FunkLoad XML."""
    out = outcome
    config = dict(setup.config)
    config.update(setup.sink.entries)
    config["marteau_cycles_completed"] = str(out.cycles_done)
    if out.signum is not None:
        config["marteau_aborted"] = signal.Signals(out.signum).name
    if out.fuse is not None:
        config["marteau_aborted"] = fuse_line(out.fuse)
    if out.lost:
        config[LOST_KEY] = json.dumps(out.lost)
    parent_path = setup.compact_path[: -len(".mrt")] + ".parent.mrt"
    monitors = []
    if setup.monitor is not None:
        if monitor_key is not None:  # a cycle cut short: its samples too
            setup.monitor.stop(monitor_key)
        monitors = setup.monitor.finish()
    with CompactWriter(parent_path, config) as writer:
        writer.monitors(monitors)
    parts = [spec.path for spec in setup.specs if os.path.exists(spec.path)]
    parts.append(parent_path)
    try:
        for warning in combine(parts, setup.compact_path):
            console.line(f"* Warning: {warning}")
    except (MarteauError, OSError) as exc:
        console.line(f"* Error: cannot combine the worker results ({exc}); kept {parts}")
        return
    for part in parts:
        os.remove(part)
    try:
        for warning in export_xml(setup.compact_path, setup.xml_path):
            console.line(f"* Warning: {warning}")
    except (MarteauError, OSError) as exc:
        console.line(f"* Error: cannot write {setup.xml_path}: {exc}")


def print_summary(setup: BenchSetup, outcome: Outcome, console: Console) -> None:
    """FunkLoad's Result section, and what Marteau adds: lost load, drops, fuse, signal."""
    out = outcome
    console.line()
    console.title("Result")
    console.line(f"* Success: {out.successes}")
    console.line(f"* Failures: {out.failures}")
    console.line(f"* Errors: {out.errors}")
    console.line()
    for kind in ("error", "failure"):
        if kind in out.problems:
            console.line(f"First {kind}: {last_line(out.problems[kind])}")
    if out.hook_error:
        console.line(f"Hook error: {out.hook_error}")
    for text in out.lost:
        console.line(f"Load lost: {text}")
    for text in out.dropped:
        console.line(f"Dropped: {text}")
    if out.fuse is not None:
        console.line(
            f"Bench stopped by the safety fuse after {out.cycles_done} of "
            f"{len(setup.plan.cycles)} cycles: {console.status('ABORTED')}"
        )
    elif out.signum is not None:
        name = signal.Signals(out.signum).name
        console.line(
            f"Bench aborted by {name} after {out.cycles_done} of "
            f"{len(setup.plan.cycles)} cycles: {console.status('ABORTED')}"
        )
    else:
        word = "ERROR" if out.hook_error else status_word(0, out.failures, out.errors)
        if out.lost:
            word = "INCOMPLETE"
        console.line(f"Bench status: {console.status(word)}")
    console.line()
    console.line(f"Log xml: {setup.xml_path}")
    console.line(f"Compact results: {setup.compact_path}")
