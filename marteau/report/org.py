"""``--org``: the ReST report rewritten for Emacs org-mode (FunkLoad's §5.7).

Same sections, same figures: `OrgReport` is an `RstReport` whose text
pieces are translated as they are added, so there is no second copy of
the statistics or of the section logic.  The translation:

* LaTeX-friendly header lines (``#+TITLE:``, ``#+DATE:``, ``#+AUTHOR:``,
  ``#+OPTIONS:``, ``#+LATEX_HEADER:``) instead of the ReST directives;
* ReST titles become org headings (``-`` underline: ``*``, ``~``: ``**``);
* FunkLoad's fixed-width tables become ``|``-separated org tables with a
  ``|-`` rule under the header row, cells holding exactly the ReST table's
  text (stripped), so the numbers are the same;
* charts (only when they are drawn, as for ReST) are LaTeX blocks
  ``\\includegraphics[scale=0.5]{{./name}.png}``, FunkLoad's ``{./name}.png``
  form that keeps dots in names such as ``request_001.002`` legible to LaTeX;
* inline markup: ````x```` -> ``=x=``, ``**x**`` -> ``*x*``, links
  ``[[url][text]]``, ``* `` bullets -> ``- `` (a star in column 0 is a
  heading in org), literal blocks -> ``#+BEGIN_EXAMPLE``.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from marteau.report.rst import DECO, RstReport
from marteau.report.stats import BenchStats, launched

FUNKLOAD_LINK = "[[http://funkload.nuxeo.org/][FunkLoad]]"
_TITLE = re.compile(r"\A\n?(?:[=\-~]+\n)?([^\n]+)\n([=\-~])\2*\n?\Z")
_LEVELS = {"=": 1, "-": 1, "~": 2}
_IMAGE = re.compile(r"^\s*\.\. image:: (\S+)\.png$")


def _inline(text: str, apdex_t: float) -> str:
    """ReST inline markup to org."""
    text = text.replace("FunkLoad_", FUNKLOAD_LINK)
    text = text.replace("\\* Apdex |APDEXT|", f"Apdex* : Apdex T = {apdex_t:.1f}")
    text = text.replace("|APDEXT|", f"{apdex_t:.1f}")
    text = re.sub(r"``(.+?)``", r"=\1=", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    text = re.sub(r"(?<![`\w])`([^`\n]+)`(?![`\w])", r"/\1/", text)
    return re.sub(r"^\* ", "- ", text, flags=re.MULTILINE)


def _cells(line: str, width: int = 0) -> list[str]:
    """The cells of one fixed-width table line (right-aligned 18-character columns).

    Cells are split on runs of 2+ spaces so that ``MAX CPU%`` stays one cell;
    a cell filling its whole column falls back to a split on any space.
    """
    cells = re.split(r" {2,}", line.strip())
    if width and len(cells) != width:
        cells = line.split()
    return cells


def _org_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


class OrgReport(RstReport):
    """Renders a `BenchStats` as an org-mode document (options as `RstReport`)."""

    def __init__(self, stats: BenchStats, **options: Any) -> None:
        super().__init__(stats, **options)
        self._in_table = False
        self._width = 0

    def header(self) -> None:
        config = self.stats.config
        description = " ".join(
            part
            for part in (
                config.get("class_description", ""),
                "Bench result of ={}.{}=:".format(
                    config.get("class", ""), config.get("method", "")
                ),
                config.get("description", ""),
            )
            if part
        )
        self.lines.extend(
            [
                "#+TITLE: FunkLoad bench report",
                "#+DATE: " + launched(config),
                "#+AUTHOR: Marteau",
                "#+OPTIONS: toc:t num:2 ^:nil",
                "#+LATEX_HEADER: \\usepackage[a4paper,margin=2cm]{geometry}",
                "#+LATEX_HEADER: \\usepackage{graphicx}",
                "",
                "#+BEGIN_abstract",
                description,
                "#+END_abstract",
                "",
            ]
        )

    def add(self, *texts: str) -> None:
        for text in texts:
            self.lines.extend(self._translate(text))

    def _image(self, name: str) -> list[str]:
        return [
            "#+BEGIN_LaTeX",
            "\\begin{center}",
            f"\\includegraphics[scale=0.5]{{{{./{name}}}.png}}",
            "\\end{center}",
            "#+END_LaTeX",
            "",
        ]

    def _translate(self, text: str) -> list[str]:
        stripped = text.strip()
        # a table header: [images, blank,] deco, names, deco
        if DECO in text and not self._in_table and stripped.endswith(DECO):
            out: list[str] = []
            lines = text.split("\n")
            for line in lines:
                match = _IMAGE.match(line)
                if match:
                    out += self._image(match.group(1))
            names = [line for line in lines if line.strip() and not _IMAGE.match(line)]
            names = [line for line in names if not line.strip().startswith(DECO)]
            headers = _cells(names[0])
            out += [_org_row(headers), "|-"]
            self._in_table, self._width = True, len(headers)
            return out
        if self._in_table:
            if stripped.startswith(DECO):  # the footer
                self._in_table = False
                rest = stripped[len(stripped.split("\n")[0]) :].strip()
                return ["", *([_inline(rest, self.stats.apdex_t), ""] if rest else [])]
            return [_org_row(_cells(text, self._width))]
        match = _TITLE.match(text)
        if match and len(text.strip().split("\n")[-1]) >= len(match.group(1)):
            return ["*" * _LEVELS[match.group(2)] + " " + _inline(match.group(1), 0), ""]
        if "::\n\n" in text:  # a literal block
            before, block = text.split("::\n\n", 1)
            return [
                _inline(before, self.stats.apdex_t) + ":",
                "#+BEGIN_EXAMPLE",
                textwrap.dedent(block).rstrip("\n"),
                "#+END_EXAMPLE",
                "",
            ]
        return [_inline(text, self.stats.apdex_t)]


def render_org(stats: BenchStats, **options: Any) -> str:
    """The org-mode report for `stats`; options as `RstReport`."""
    return OrgReport(stats, **options).render()
