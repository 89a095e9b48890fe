"""Import shim for the parts of webunit that FunkLoad tests import."""
