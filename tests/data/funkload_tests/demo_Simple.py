"""FunkLoad's demo "simple" test, in Python 3 syntax (FUNKLOAD.md section 8)."""

import unittest

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Simple(FunkLoadTestCase):
    """Fetch the main URL nb_time times."""

    def setUp(self):
        self.server_url = self.conf_get("main", "url")

    def test_simple(self):
        server_url = self.server_url
        nb_time = self.conf_getInt("test_simple", "nb_time")
        for _i in range(nb_time):
            self.get(server_url, description="Get url")


if __name__ in ("main", "__main__"):
    unittest.main()
