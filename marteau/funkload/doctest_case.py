"""`FunkLoadDocTest`: a FunkLoad test case for doctests and the interactive prompt.

``fl = FunkLoadDocTest(); fl.get(url)`` works without a conf file: think
time is a millisecond and the log and result files go to the temp directory.
"""

from __future__ import annotations

import os
import tempfile
from types import SimpleNamespace

from marteau.funkload.testcase import FunkLoadTestCase


class FunkLoadDocTest(FunkLoadTestCase):
    """A ready-to-use browser with FunkLoad's API (no test method needed)."""

    def __init__(self, debug: bool = False, debug_level: int = 1) -> None:
        directory = tempfile.gettempdir()
        options = SimpleNamespace(
            ftest_sleep_time_min=0.001,
            ftest_sleep_time_max=0.001,
            ftest_log_to="console file" if debug else "file",
            ftest_log_path=os.path.join(directory, "fl-doc-test.log"),
            ftest_result_path=os.path.join(directory, "fl-doc-test.xml"),
            debug_level=debug_level if debug else 0,
        )
        super().__init__("runTest", options)

    def runTest(self) -> None:
        """Nothing: the doctest drives the instance."""
