"""Exit statuses: one table for `marteau bench`, `marteau run` and `marteau submit --wait`.

CI jobs branch on these, so a number keeps its meaning in every command
(README "Exit statuses" lists them for users). The open model's dropped
iterations are none of these: they are counted and warned about, the bench ran
as planned (a `dropped` threshold turns them into FAILURES).
"""

from __future__ import annotations

from collections.abc import Iterable

OK = 0  # every planned cycle recorded, no failure, no error
FAILURES = 1  # test failures (assertions), thresholds violated, or the run could not finish
BAD_INPUT = 2  # bad input: nothing was locked or started
FUSE = 3  # the safety fuse stopped the bench
INCOMPLETE = 4  # load lost: a late start, a cycle shorter than planned or without a finished test, a node missing
ERRORS = 255  # errors: requests or hooks that errored (FunkLoad's code)
SIGNAL_BASE = 128  # 128 + N: stopped by signal N

# When several results make one (a run's nodes and its report), the first of
# these that happened wins: a stopped bench, then lost load, then errors, then
# failures. A node's status outside the table (a bench killed by a signal or
# by its timeout) counts as load lost.
PRECEDENCE = (FUSE, INCOMPLETE, ERRORS, FAILURES, OK)

MEANING = {
    OK: "ok",
    FAILURES: "test failures or thresholds violated",
    BAD_INPUT: "bad input",
    FUSE: "stopped by the safety fuse",
    INCOMPLETE: "incomplete: load lost (a cycle shorter than planned or without a finished test, or a node missing)",
    ERRORS: "finished with errors",
}

# The `--help` epilog of every command that exits with this table.
HELP = (
    "Exit status (the same for bench, run and submit --wait): 0 ok; 1 test failures or "
    "thresholds violated; 2 bad input, nothing started; 3 stopped by the safety fuse; "
    "4 load lost (a cycle shorter than planned or without a finished test, a node missing); "
    "255 errors; 128+N stopped by signal N. When several apply: 3, then 4, then 255, then 1."
)


def combine(codes: Iterable[int]) -> int:
    """One status for several results, by PRECEDENCE (OK when there are none)."""
    found = {code if code in PRECEDENCE else INCOMPLETE for code in codes}
    return next((code for code in PRECEDENCE if code in found), OK)


def meaning(code: int) -> str:
    """What a status says, in words (for job pages and mails)."""
    if code in MEANING:
        return MEANING[code]
    if SIGNAL_BASE < code < ERRORS:
        return f"stopped by signal {code - SIGNAL_BASE}"
    return f"exit {code}"
