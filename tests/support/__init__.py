"""What several test modules share, one module per kind of helper.

A test module never imports another test module (tests/test_packaging.py checks):
what two modules use lives here, in tests/servers.py and its siblings, or, for a
fixture, in a tests/conftest*.py plugin.
"""
