"""One GET of [main] url, for connection errors and missing conf keys."""

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Target(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url"), description="The target")

    def test_not_found(self):
        self.get(self.conf_get("main", "url") + "missing", description="Missing page")
