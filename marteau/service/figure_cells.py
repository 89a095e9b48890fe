"""The key-figure cells of a job list row, as HTML.

The dashboard shows up to 90 jobs; as template macros, four cells with their change
badges cost it more than the rest of its rows together (a Jinja macro call is some
ten string escapes and context copies). Here one call per row, every text escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from markupsafe import Markup

from marteau.service.comparisons import FIGURES, figure_text, flagged_changes


def _badge(compared_to: int | None, change: dict[str, str] | None) -> str:
    if not change:
        return ""
    kind = escape(change["class"])
    return (
        f' <span class="change change-{kind}" title="{kind} than job #{compared_to}, '
        f"past the project's tolerance\">{escape(change['change'])}</span>"
    )


def change_badge(job: Any, name: str) -> Markup:
    """The badge of one figure of a job, if it moved past the tolerance."""
    return Markup(_badge(job.compared_to, flagged_changes(job.flagged).get(name)))


def figure_cells(job: Any) -> Markup:
    """The `<td>` of each key figure of a (listed) job, a change past its project's
    tolerance marked. Strings, escaped, made Markup once: a Markup per piece costs
    twice the row."""
    flags = flagged_changes(job.flagged) if job.flagged else {}
    compared_to = job.compared_to
    cells = [
        f'<td class="num figure-{name}">{escape(figure_text(name, getattr(job, name)))}'
        f"{_badge(compared_to, flags.get(name))}</td>"
        for name in FIGURES
    ]
    return Markup("".join(cells))
