"""FunkLoad's xmlrpc demo (test_Credential.py), in Python 3 syntax."""

from funkload.FunkLoadTestCase import FunkLoadTestCase


class Credential(FunkLoadTestCase):
    def setUp(self):
        self.server_url = self.conf_get("main", "url")

    def test_credential(self):
        server_url = self.server_url
        ret = self.xmlrpc(server_url, "getStatus", description="Check getStatus")
        self.assertTrue("running" in ret, f"Server is down {ret}")
        ret = self.xmlrpc(server_url, "getCredential", description="Get a credential")
        self.assertEqual(len(ret), 2, f"Invalid return {ret}")
        ret = self.xmlrpc(server_url, "listGroups", description="list groups")
        self.assertTrue(len(ret) > 0, "No groups found")
        group = ret[0]
        ret = self.xmlrpc(server_url, "listCredentials", description="list credentials")
        self.assertTrue(len(ret) > 0, "No credentials found")
        ret = self.xmlrpc(
            server_url, "listCredentials", (group,), description="list credentials of a group"
        )
        self.assertTrue(len(ret) > 0, f"No credentials found in group {group}")
