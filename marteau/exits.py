"""Exit statuses: one table for `marteau bench`, `marteau run` and `marteau submit --wait`.

CI jobs branch on these, so a number keeps its meaning in every command
(README "Exit statuses" lists them for users).
"""

OK = 0  # every planned cycle recorded, no failure, no error
FAILURES = 1  # test failures (assertions), thresholds violated, or the run could not finish
BAD_INPUT = 2  # bad input: nothing was locked or started
FUSE = 3  # the safety fuse stopped the bench
INCOMPLETE = 4  # load lost: a late start, a cycle shorter than planned or without a finished test, a node missing
ERRORS = 255  # errors: requests or hooks that errored (FunkLoad's code)
SIGNAL_BASE = 128  # 128 + N: stopped by signal N
