"""Marteau: distributed HTTP load testing for FunkLoad-style tests."""

__version__ = "0.1.0"
