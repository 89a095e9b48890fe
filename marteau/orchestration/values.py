"""Free-text job values (a label, a name, a URL): one line of printable text, bounded.

Such a value is data all the way (an `!unsafe` Ansible variable, quoted before a
shell), so `{{ }}`, `$( )`, quotes or `;` in it are shown as typed. What it may
not hold is what a console line, a report title or a directory name cannot show:
a newline or another control character, or an unbounded length.
"""

from __future__ import annotations

from marteau.errors import MarteauError

MAX_LABEL = 200


def text_problem(value: str, limit: int) -> str | None:
    """Why `value` is not one line of at most `limit` printable characters, or None."""
    if len(value) > limit:
        return f"at most {limit} characters, got {len(value)}"
    if not value.isprintable():
        return "control characters (a newline?) are not accepted"
    return None


def check_text(field: str, value: str, limit: int) -> str:
    """`value`, or MarteauError naming `field`."""
    problem = text_problem(value, limit)
    if problem:
        raise MarteauError(f"{field}: {problem}")
    return value
