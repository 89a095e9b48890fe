"""The bench console: FunkLoad's text, plus one live progress line per cycle.

Plain writes to stdout, no rich: the parent refreshes one line a second
from counters the workers send, so the console never costs the users
anything.  On a terminal the line is rewritten in place; elsewhere (a log,
the web service's live console) a plain line is printed every few seconds.
"""

from __future__ import annotations

import datetime
import re
import sys
import time
from typing import TextIO

# Seconds between progress lines when stdout is not a terminal: `marteau run`
# reads the last line from each node for its live view, which must stay
# fresher than 2 s.
PLAIN_EVERY = 1.0

_COLORS = {"SUCCESSFUL": "32", "FAILURE": "31", "ERROR": "31;1", "ABORTED": "33"}


def now_iso(instant: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(time.time() if instant is None else instant).isoformat()


def status_word(successes: int, failures: int, errors: int) -> str:
    """FunkLoad's status: ERROR beats FAILURE beats SUCCESSFUL."""
    if errors:
        return "ERROR"
    if failures:
        return "FAILURE"
    return "SUCCESSFUL"


_CHAINS = re.compile(
    r"\n\s*(?:The above exception was the direct cause of the following exception"
    r"|During handling of the above exception, another exception occurred):\s*\n"
)


def last_line(text: str) -> str:
    """A traceback in one line: the exception, and the one it was raised from.

    ``OSError: Can't load http://x/. (from HTTPClientError: ... Connection
    refused)``: the user sees the URL and the cause without a traceback.
    """

    def final(block: str) -> str:
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        return lines[-1] if lines else block.strip()

    blocks = _CHAINS.split(text.strip())
    last = final(blocks[-1])
    if len(blocks) > 1:
        cause = final(blocks[-2])
        name, sep, message = cause.partition(": ")
        cause = f"{name.rsplit('.', 1)[-1]}{sep}{message}"
        if cause != last:
            return f"{last} (from {cause})"
    return last


class Console:
    """Writes the bench's human output; one live line at a time."""

    def __init__(self, stream: TextIO | None = None, *, color: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.color = color and self.tty
        self._live = False
        self._partial = False
        self._last_plain = 0.0

    # -- plain output -------------------------------------------------------

    def line(self, text: str = "") -> None:
        """A full line (or the end of a `partial` one)."""
        self._end_live()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._partial = False

    def partial(self, text: str) -> None:
        """The start of a line that `line` completes (``* hook: ... done.``)."""
        self._end_live()
        self.stream.write(text)
        self.stream.flush()
        self._partial = True

    def title(self, text: str, underline: str = "=") -> None:
        self.line(text)
        self.line(underline * len(text))
        self.line()

    def status(self, word: str) -> str:
        """``**WORD**``, coloured on a terminal."""
        text = f"**{word}**"
        code = _COLORS.get(word)
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    # -- live line ----------------------------------------------------------

    def live(self, text: str, *, force: bool = False) -> None:
        """Show progress: rewritten in place on a terminal, else a line every few seconds."""
        if self._partial:
            self.line()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._live = True
            return
        now = time.monotonic()
        if force or now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            self.line("  " + text)

    def _end_live(self) -> None:
        if self._live:
            self.stream.write("\n")
            self._live = False
