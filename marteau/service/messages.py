"""Messages the service stores or shows: bounded in length, and without the server's
own paths.

A user's input can make an error message as large as the input (a `.marteau.yml`
value quoted back, a YAML expansion): every message kept in the database or sent in
an answer goes through `cap`. Errors about a project name its files by their place
inside the project: the data folder and the temporary folders where an upload is
unpacked are the server's business (`scrub`)."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

MAX_MESSAGE = 4096  # characters of one stored or shown message
TRUNCATED = " … [truncated, {} characters in all]"


def cap(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` if short enough, else its start marked as truncated (`limit` in all)."""
    if len(text) <= limit:
        return text
    mark = TRUNCATED.format(len(text))
    return text[: max(0, limit - len(mark))] + mark


@functools.lru_cache(maxsize=8)
def _patterns(data_dir: Path) -> list[tuple[re.Pattern[str], str]]:
    """For each server folder (the data folder as given and resolved, the temporary
    folder), longest first: its project-source prefix (dropped) and itself."""
    folders = {str(data_dir), str(data_dir.resolve()), tempfile.gettempdir()}
    patterns = []
    for folder in sorted(folders, key=len, reverse=True):
        # a path starts the message, or follows a space, a quote or a colon
        base = r"(?<![\w./~-])" + re.escape(folder.rstrip("/"))
        # a job's folder, an upload's staging folder, a preview's folder: the path
        # from the project's source on
        source = r"/(?:jobs/[^/\s'\"]+|marteau-preview-[^/\s'\"]+)/source/"
        patterns.append((re.compile(base + source), ""))
        patterns.append((re.compile(base + r"(?=[/\s'\":]|$)"), "<server>"))
    return patterns


def scrub(text: str, data_dir: Path) -> str:
    """`text` without the data folder's or the temporary folder's paths: a project
    file's path becomes its path inside the project."""
    for pattern, replacement in _patterns(data_dir):
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=256)
def shown(text: str, data_dir: Path) -> str:
    """A message as the service stores or sends it: scrubbed, then capped. Cached: a
    page of jobs shows the same few exit reasons over and over."""
    return cap(scrub(text, data_dir))
