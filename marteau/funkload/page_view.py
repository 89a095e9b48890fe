"""``fl-run-test -V``: show each dumped page in a web browser while the test runs.

FunkLoad drove a running Firefox with ``firefox -remote``, which today's
Firefox no longer understands; Python's `webbrowser` opens the page in the
user's browser of choice (``$BROWSER``, else the desktop default) instead.
"""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

_warned = False


def open_in_browser(path: str) -> None:
    """Open the dumped page ``path`` in a new browser tab; warn once if there is no browser."""
    global _warned
    url = Path(path).resolve().as_uri()
    try:
        opened = webbrowser.open(url, new=2)
    except webbrowser.Error:
        opened = False
    if not opened and not _warned:
        _warned = True
        print(
            f"-V: no web browser could be started (set $BROWSER); pages stay in {Path(path).parent}",
            file=sys.stderr,
        )
