from funkload.FunkLoadTestCase import FunkLoadTestCase


class Bench(FunkLoadTestCase):
    def test_get(self)
        pass
