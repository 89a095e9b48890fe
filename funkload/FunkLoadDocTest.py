"""Import shim: ``from funkload.FunkLoadDocTest import FunkLoadDocTest``."""

from marteau.funkload.doctest_case import FunkLoadDocTest

__all__ = ["FunkLoadDocTest"]
