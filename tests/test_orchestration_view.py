"""The live view of `marteau run`: a rich table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from marteau.orchestration.live import LiveView
from marteau.orchestration.run import LoadTestRun, RunOptions, split_cycles
from marteau.orchestration.run_events import ARGSPEC_TASK


def test_table_shows_stage_nodes_and_bench_progress() -> None:
    view = LiveView(Console(file=io.StringIO(), width=120, force_terminal=True), live=True)
    view.title = "Tiny"
    view.set_stage("bench")
    view.node(
        "node1", "benching", cycle=1, users=4, cycle_users=4, rps=812.4, ok=90, failures=1, errors=2
    )
    view.node("node2", "unreachable", note="ssh: connection refused")
    out = Console(file=io.StringIO(), width=120)
    out.print(view.render())
    text = out.file.getvalue()
    assert "stage: bench" in text
    row = next(line for line in text.splitlines() if line.startswith("node1"))
    assert row.split()[:8] == ["node1", "benching", "1", "4/4", "812", "90", "1", "2"]
    assert "unreachable" in text and "connection refused" in text


def test_plain_lines_on_changes_and_each_progress_line() -> None:
    stream = io.StringIO()
    view = LiveView(Console(file=stream, width=200), live=False)
    view.set_stage("provision")
    view.node("node1", "provisioning")
    view.node("node1", "provisioning")  # no change: no line
    view.node(
        "node1", "benching", cycle=0, users=1, cycle_users=2, rps=10.0, ok=1, failures=0, errors=0
    )
    # the bench's lines of the next seconds, arriving together at one poll: one line each
    for second in (2, 3):
        view.node(
            "node1", cycle=0, users=2, cycle_users=2, rps=20.0, ok=second, failures=0, errors=0
        )
    view.node("node1", cycle=0, users=2, cycle_users=2, rps=20.0, ok=3, failures=0, errors=0)
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "provision",
        "node1: provisioning",
        "node1: benching",
        "node1: cycle #0 users 2/2, 20 req/s, 2 ok, 0 failures, 0 errors",
        "node1: cycle #0 users 2/2, 20 req/s, 3 ok, 0 failures, 0 errors",
    ]  # the same figures again within a few seconds: no line


def test_plain_messages_are_never_wrapped_nor_read_as_markup() -> None:
    stream = io.StringIO()
    view = LiveView(Console(file=stream, width=40), live=False)
    text = "Tiny.conf:3: [main] url: 'shop:8080': expected an http:// or https:// URL [bold]"
    view.message(text)
    (line,) = stream.getvalue().splitlines()
    assert line.split("] ", 1)[1] == text


def test_plain_progress_line_for_each_new_cycle_never_wrapped() -> None:
    stream = io.StringIO()
    view = LiveView(Console(file=stream, width=40), live=False)
    name = "a-node-with-a-long-name.example.org"
    view.node(name, "benching")
    for cycle in (0, 0, 1):
        view.node(name, cycle=cycle, users=3, cycle_users=3, rps=1234.0, ok=7, failures=1, errors=2)
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        f"{name}: benching",
        f"{name}: cycle #0 users 3/3, 1234 req/s, 7 ok, 1 failures, 2 errors",
        f"{name}: cycle #1 users 3/3, 1234 req/s, 7 ok, 1 failures, 2 errors",
    ]


def test_split_cycles_gives_the_remainder_to_the_first_nodes() -> None:
    assert split_cycles("10:20:3", 3) == ["4:7:1", "3:7:1", "3:6:1"]
    assert split_cycles("5", 1) == ["5"]


def test_bench_timeout_follows_the_cycles(tmp_path) -> None:
    from marteau.orchestration.project import Project
    from marteau.orchestration.run import bench_timeout

    project = Project(
        root=tmp_path, config_path=tmp_path / ".marteau.yml", script="t.py", test="T.test"
    )
    assert bench_timeout(project, None, None) == 3600  # nothing known
    assert bench_timeout(project, "1:2", 5) == 600  # short: the floor
    assert bench_timeout(project, "1:2:3:4:5:6:7:8:9:10", 120) == 3 * (10 * 130 + 60)
    (tmp_path / "T.conf").write_text("[bench]\ncycles = 10:20\nduration = 300\n")
    assert bench_timeout(project, None, None) == 3 * (2 * 310 + 60)


def test_run_cost_from_the_nodes_rates() -> None:
    from marteau.orchestration.run import run_cost

    assert run_cost({"a": {"cost_per_hour": None}}, 60) is None
    cost = run_cost({"a": {"cost_per_hour": "0.40"}, "b": {"cost_per_hour": 0.2}, "c": {}}, 1800)
    assert cost["total"] == 0.3 and cost["seconds"] == 1800 and abs(cost["per_hour"] - 0.6) < 1e-9


def test_the_nodes_table_is_not_wrapped_outside_a_terminal(capsys) -> None:
    from marteau.orchestration.nodes_command import _show

    lock = {"job": "a-job-with-a-long-name-" + "x" * 40, "owner": "someone@a.long.host.example"}
    lock["expires"] = 4_000_000_000
    row = {"node": "node-with-a-long-name.example.org", "reachable": True, "error": ""}
    _show([{**row, "lock": lock, "version": ("1.0",), "clock": 0.0012}])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2, lines  # the header and one row
    assert lines[1].split()[:3] == ["node-with-a-long-name.example.org", "locked", "job"]
    assert "someone@a.long.host.example, expires in" in lines[1]


def test_a_roles_argument_check_is_no_stage_but_its_failure_is_shown() -> None:
    """Each entry point of a role starts with ansible-core's check of its arguments: the
    release's (role marteau_lock) or the firewall removal's (marteau_bench) in `always:`
    must not take the stage back; a value the check refuses fails the node, with why."""
    view = LiveView(Console(file=io.StringIO(), width=200), live=False)
    run = LoadTestRun(RunOptions(), view)

    def event(kind: str, role: str, task: str, res: dict | None = None) -> None:
        data = {"host": "node1", "role": role, "task": task, "res": res or {}}
        run.on_event({"event": kind, "event_data": data})

    event("runner_on_start", "marteau_collect", "Write the node's facts and list its result files")
    for role, entry in (("marteau_bench", "firewall_remove"), ("marteau_lock", "release")):
        event("runner_on_start", role, f"{ARGSPEC_TASK} '{entry}' - what it does")
    assert (view.stage, view.nodes["node1"].state) == ("collect", "collecting")
    refused = "Validation of arguments failed:\nargument 'marteau_bench_timeout' is of type str"
    event("runner_on_failed", "marteau_bench", f"{ARGSPEC_TASK} 'main'", {"msg": refused})
    assert view.nodes["node1"].state == "failed"
    assert "Validation of arguments failed" in view.nodes["node1"].note
