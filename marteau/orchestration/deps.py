"""The test's `deps`: PEP 508 requirements by name, nothing else.

A `deps` item reaches pip. Passed through as text, `-r <file of the service>`
printed that file in pip's error and `--index-url=...` chose where packages came
from; a URL or a path fetches code from anywhere. So an item must parse as a
`packaging` Requirement naming a package of the index (version specifiers,
extras and environment markers are fine); options, URLs and paths are refused.
The controller only downloads wheels of them (`prepare.download_wheels`).
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement

from marteau.orchestration.values import text_problem

MAX_LENGTH = 200


def check_requirement(text: str) -> str | None:
    """Why `text` is not an accepted requirement, or None when it is."""
    problem = text_problem(text, MAX_LENGTH)
    if problem:
        return problem
    stripped = text.strip()
    if stripped.startswith("-"):
        return "pip options are not accepted, only requirements such as 'requests>=2.31'"
    try:
        requirement = Requirement(stripped)
    except InvalidRequirement as exc:
        if "/" in stripped or "\\" in stripped or stripped.startswith("."):
            return "paths are not accepted, only requirements such as 'requests>=2.31'"
        return f"not a PEP 508 requirement ({str(exc).splitlines()[0]})"
    if requirement.url:
        return "URLs are not accepted ('name @ URL'), only requirements from the package index"
    return None
