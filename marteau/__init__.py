"""Marteau: distributed HTTP load testing for FunkLoad-style tests."""

from marteau import native

__version__ = "0.1.0"

native.choose()  # before any compiled module is imported (marteau/native.py)
