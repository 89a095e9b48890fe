import no_such_module_for_marteau  # noqa: F401

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Failing(FunkLoadTestCase):
    def test_nothing(self):
        pass
