"""One table of exit statuses: how several combine, what the service says of each, and
what `marteau submit --wait` exits with."""

from __future__ import annotations

from pathlib import Path

import pytest

from marteau import exits
from marteau.service.job_runs import outcome
from marteau.service.models import CANCELLED, FAILED, SUCCEEDED
from marteau.service.submit import job_exit


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], exits.OK),
        ([0, 0], exits.OK),
        ([0, 1], exits.FAILURES),
        ([1, 255, 0], exits.ERRORS),
        ([255, 4], exits.INCOMPLETE),
        ([4, 3, 255], exits.FUSE),
        ([0, 143], exits.INCOMPLETE),  # a node's bench killed by a signal: its load is lost
        ([0, 124], exits.INCOMPLETE),  # ... or by its timeout
    ],
)
def test_several_statuses_make_one_by_the_documented_precedence(codes, expected) -> None:
    assert exits.combine(codes) == expected


def test_the_readme_and_help_give_the_same_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    for code in (0, 1, 2, 3, 4, 255):
        assert f"| {code} |" in section, code
    assert "128+N" in section and "3, then 4, then 255, then 1" in section
    assert "3, then 4, then 255, then 1" in exits.HELP


def test_a_job_that_ended_with_errors_or_lost_load_says_so(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text(
        "[  30.1s] localhost: bench done (exit 255)\n"
        "Run directory: /srv/marteau/jobs/7/runs/x\n"
        "Totals: 38 requests (38 errors), 38 tests (38 errors) on 1 node(s)\n"
    )
    assert outcome(exits.ERRORS, None, console) == (
        FAILED,
        "finished with errors: 38 requests (38 errors), 38 tests (38 errors) on 1 node(s)",
    )
    state, reason = outcome(exits.INCOMPLETE, None, console)
    assert state == FAILED and reason.startswith("incomplete: load lost")
    assert outcome(exits.SIGNAL_BASE + 15, None, console) == (
        FAILED,
        "stopped by signal 15 (exit 143)",
    )
    assert outcome(exits.OK, None, console) == (SUCCEEDED, "done")


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        (SUCCEEDED, 0, 0),
        (FAILED, 255, 255),
        (FAILED, 4, 4),
        (FAILED, 3, 3),
        (FAILED, 2, 2),
        (FAILED, None, 1),  # the worker was lost, a duration limit: no status of its own
        (FAILED, 0, 1),
        (CANCELLED, None, 143),
    ],
)
def test_submit_wait_exits_with_the_jobs_own_status(state, code, expected) -> None:
    assert job_exit(state, code) == expected
