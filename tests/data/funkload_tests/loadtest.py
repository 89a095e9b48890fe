"""The old Marteau's `StupidTest`, pointed at a local server instead of google.com."""

from funkload.FunkLoadTestCase import FunkLoadTestCase


class StupidTest(FunkLoadTestCase):
    def test_simple(self):
        res = self.get(self.conf_get("main", "url"))
        self.assertEquals(res.code, 200)
