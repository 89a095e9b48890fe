"""The demo load test: a visitor browsing the demo shop, FunkLoad style."""

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Demo(FunkLoadTestCase):
    """Browse the shop, use the API, log in and search."""

    def setUp(self):
        self.server_url = self.conf_get("main", "url")

    def test_shop(self):
        server = self.server_url
        res = self.get(server + "/", description="Home page")
        self.assertEqual(res.code, 200)
        for page in range(1, self.conf_getInt("test_shop", "api_pages") + 1):
            res = self.get(
                server + "/api/products", params={"page": page}, description="Products API"
            )
            self.assertIn('"items"', res.body)
        res = self.post(
            server + "/login", params=[["user", "demo"], ["password", "demo"]], description="Log in"
        )
        self.assert_("Welcome back" in res.body)
        res = self.get(server + "/search", params={"q": "hammer"}, description="Search")
        self.assertEqual(res.code, 200)
