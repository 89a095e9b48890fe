"""Import shim: ``from webunit.utility import Upload``."""

from marteau.funkload.utils import Upload

__all__ = ["Upload"]
