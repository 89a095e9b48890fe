"""FunkLoad-style tests driven by tests/test_bench_command.py (run from a copy of this dir)."""

import os
import select
import time

from funkload.FunkLoadTestCase import FunkLoadTestCase

HOOK_LOG = "hooks.log"  # in the bench's current directory


class Bench(FunkLoadTestCase):
    """Hooks append to hooks.log so the tests can check their order."""

    def _hook(self, text):
        with open(HOOK_LOG, "a") as log:
            log.write(f"{text} pid={os.getpid()}\n")

    def setUpBench(self):
        self._hook("setUpBench")
        self.addMetadata(purpose="marteau tests")

    def tearDownBench(self):
        self._hook("tearDownBench")

    def setUpCycle(self):
        self._hook("setUpCycle")

    def midCycle(self, cycle, cvus):
        self._hook(f"midCycle {cycle} {cvus}")

    def tearDownCycle(self):
        self._hook("tearDownCycle")

    def setUp(self):
        self.url = self.conf_get("main", "url")
        self.iteration = getattr(self, "iteration", 0) + 1

    def test_get(self):
        self.get(self.url + "/ok", description="Get ok")

    def test_fail(self):
        self.get(self.url + "/missing", description="Get a missing page")

    def test_flaky(self):
        """Raises on every third iteration of every user: the bench goes on."""
        self.get(self.url + "/ok", description="Get ok")
        if self.iteration % 3 == 0:
            raise RuntimeError(f"boom at iteration {self.iteration}")

    def test_raise_at_once(self):
        """Fails before any request: with no think time it never waits on the hub."""
        raise RuntimeError("nothing to request")

    def test_slow(self):
        """Outlives the window: joining it delays the next cycle's staging."""
        self.get(self.url + "/ok", description="Get ok")
        time.sleep(self.conf_getFloat("test_slow", "pause"))

    def test_pause(self):
        """A GET, then time.sleep: on the engine's hub the users pause side by side."""
        self.get(self.url + "/ok", description="Get ok")
        time.sleep(self.conf_getFloat("test_pause", "pause"))

    def test_hold(self):
        """A GET, then a wait the hub cannot see (select, not time.sleep)."""
        self.get(self.url + "/ok", description="Get ok")
        select.select([], [], [], self.conf_getFloat("test_hold", "pause"))

    def test_long(self):
        """Outlives an abort's grace: the runner ends it, its cleanup still runs."""
        self.get(self.url + "/ok", description="Get ok")
        try:
            self._hook(f"sleeping {self.thread_id}")
            time.sleep(30)
        finally:
            self._hook(f"cleanup {self.thread_id}")


class HookFail(Bench):
    """setUpCycle fails: the bench stops, tearDownBench still runs."""

    def setUpCycle(self):
        super().setUpCycle()
        raise ValueError("no data for this cycle")
