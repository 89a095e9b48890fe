"""Import shim: ``from funkload.FunkLoadTestCase import FunkLoadTestCase``."""

from marteau.funkload.testcase import FunkLoadTestCase

__all__ = ["FunkLoadTestCase"]
