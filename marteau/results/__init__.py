"""Result formats: Marteau's compact binary results, FunkLoad XML, merging nodes."""

from __future__ import annotations

import os
from typing import Any

from marteau.errors import MarteauError


def load(path: str | os.PathLike[str]) -> Any:
    """Read a compact (``.mrt``) or FunkLoad XML result file into a `ResultSet`.

    The format is chosen by content (the compact magic line), not by name;
    anything unreadable raises `MarteauError` naming the file.
    """
    from marteau.results.compact import MAGIC_PREFIX, read_compact
    from marteau.results.funkload_reader import read_xml

    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            head = f.read(len(MAGIC_PREFIX))
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read results: {exc.strerror}") from exc
    try:
        if head == MAGIC_PREFIX:
            return read_compact(name)
        return read_xml(name)
    except MarteauError:
        raise
    except (ValueError, OSError, UnicodeError) as exc:
        raise MarteauError(f"{name}: unreadable result file: {exc}") from exc
