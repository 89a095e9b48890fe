from funkload.FunkLoadTestCase import FunkLoadTestCase

raise RuntimeError("this test module fails at import")


class Bench(FunkLoadTestCase):
    def test_get(self):
        pass
