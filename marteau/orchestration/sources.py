"""The link rule of a project's files: nothing outside the project's folder is read.

A git repository can hold `leak.txt -> /etc/marteau/admin-password`; packed by
following the link, the file went to the nodes and the test sent it anywhere.
One rule for every source (a clone, an uploaded archive, a local folder): a
symbolic link whose target, resolved, leaves the folder is refused with its
name, and the test archive packs regular files inside the folder only.
"""

from __future__ import annotations

import os
from pathlib import Path

from marteau.errors import MarteauError

# Git's own data: written by git, never packed, never read as the project.
SKIP_DIRS = {".git"}


def inside(base: Path, target: Path) -> bool:
    """Whether `target`, its links resolved, is `base` or below it (a link loop is not)."""
    try:
        target.resolve().relative_to(base.resolve())
    except (ValueError, RuntimeError, OSError):
        return False
    return True


def check_link(root: Path, path: Path, source: str) -> None:
    """MarteauError when `path` is a link whose target leaves `root`."""
    if path.is_symlink() and not inside(root, path):
        name = path.relative_to(root).as_posix()
        raise MarteauError(
            f"{source}: {name!r} is a link to {os.readlink(path)!r}, outside the project's "
            "folder: links may only point inside the project"
        )


def check_links(root: Path, source: str) -> None:
    """Refuse the project at `root` (a fresh clone) if one of its links leaves it."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(dirnames + filenames):
            check_link(root, Path(directory) / name, source)


def packable(root: Path, path: Path, source: str) -> bool:
    """Whether `path` goes into the test archive: a regular file inside `root`
    (a link to one inside counts); a link out is refused, anything else skipped."""
    check_link(root, path, source)
    return path.is_file()
