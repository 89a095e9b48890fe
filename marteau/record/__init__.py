"""`marteau record` (alias `fl-record`): a browsing session becomes a FunkLoad test.

A session arrives as a HAR file, exported by a browser or written by the
recording proxy (mitmproxy's `mitmdump`, run as a program): `har` reads and
validates it, `session` turns its exchanges into pages, `codegen` writes the
test module and its `.conf`, `proxy` runs the recording proxy and `command`
is the click command tying them together.
"""
