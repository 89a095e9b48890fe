"""The hub's greenlet type, in a module of its own.

It stays interpreted when the hub is compiled (`marteau.native`): a mypyc
class cannot derive from greenlet's C type.
"""

from __future__ import annotations

from typing import Any

import greenlet


class HubGreenlet(greenlet.greenlet):
    """A greenlet whose blocking calls yield to ``hub`` (a user or the runner itself)."""

    hub: Any  # its `marteau.engine.hub.Hub` (typed loosely: the hub imports this module)
    # Odd while parked in a network or blocking wait (`Hub.wait`), each wait a new
    # number: the fuse's ages of requests in flight (a compiled hub has no frames to read).
    waits = 0
