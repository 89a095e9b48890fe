"""Import shim: ``from funkload.Lipsum import Lipsum``."""

from marteau.funkload.lipsum import Lipsum

__all__ = ["Lipsum"]
