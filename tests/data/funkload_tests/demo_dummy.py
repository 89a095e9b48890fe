"""Plain unittest classes for the loader, like FunkLoad's tests/test_dummy.py."""

import unittest


class TestDummy1(unittest.TestCase):
    def test_dummy1_1(self):
        self.assertEqual(1, 1)

    def test_dummy1_2(self):
        self.assertTrue(True)


class TestDummy2(unittest.TestCase):
    def test_dummy2_1(self):
        pass

    def test_dummy2_2(self):
        pass


class TestDummy3(unittest.TestCase):
    def test_dummy3_1(self):
        self.fail("on purpose")

    def test_dummy3_2(self):
        raise ValueError("on purpose")


def test_suite():
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    suite.addTest(loader.loadTestsFromTestCase(TestDummy1))
    suite.addTest(loader.loadTestsFromTestCase(TestDummy2))
    return suite
