"""The engine's compiled modules: which they are, and whether this process runs them.

The package's build (setup.py) compiles the per-request path, `COMPILED`, with
mypyc from the same typed source; each extension module sits beside its
``.py``, and Python's import system prefers the extension. The ``.py`` stays
the fallback wherever the extension is absent (the pure wheel, a platform
without the compiled wheel) and is chosen on purpose by:

* ``MARTEAU_PURE=1`` in the environment: `choose` (called by
  ``marteau/__init__.py``, before any of these modules is imported) puts a
  finder first on ``sys.meta_path`` that loads their source;
* in a source tree (an editable install), an extension older than its
  ``.py``: running it would silently ignore an edit, so the source runs until
  the build is redone (``make .venv/.installed``).

`describe` says which way the engine runs and why, for the run's provenance
(the collect role) and `bench/engine.py`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# The per-request path, by measurement (bench/engine.py). Not FunkLoadTestCase
# (users subclass it, and a compiled class cannot derive from
# unittest.TestCase): it keeps its counters and records in a compiled
# `ResultLog`; not http_error (a compiled class cannot derive from OSError).
COMPILED = (
    "marteau.engine.hub",
    "marteau.engine.http_wire",
    "marteau.engine.http_connect",
    "marteau.engine.http",
    "marteau.engine.recorder",
    "marteau.funkload.response",
    "marteau.funkload.browser",
    "marteau.funkload.result_log",
)
PURE_ENV = "MARTEAU_PURE"
GROUP = "marteau"  # mypyc's shared library: `marteau__mypyc.<suffix>`, top level

_why_pure: str | None = None


def _source(name: str) -> Path:
    return Path(__file__).resolve().parent.parent.joinpath(*name.split(".")).with_suffix(".py")


def _extension(name: str) -> Path | None:
    """The extension module of `name` this interpreter would load, if any."""
    source = _source(name)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


class _SourceFinder:
    """Loads the compiled modules from their ``.py`` (a meta path finder)."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(name, _source(name))


def _stale() -> str | None:
    """In a source tree, the first compiled module whose ``.py`` is newer than it."""
    if not (Path(__file__).resolve().parent.parent / "setup.py").is_file():
        return None
    for name in COMPILED:
        extension = _extension(name)
        if extension and extension.stat().st_mtime < _source(name).stat().st_mtime:
            return name
    return None


def choose() -> None:
    """Make this process import the ``.py`` modules when asked to or when the build is stale."""
    global _why_pure
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        _why_pure = f"{PURE_ENV} is set"
    elif stale := _stale():
        _why_pure = f"{stale}'s compiled module is older than its source (rebuild: make)"
    if _why_pure and _SourceFinder not in sys.meta_path:
        sys.meta_path.insert(0, _SourceFinder)


def compiled_files() -> list[Path]:
    """The compiled engine's files, for this interpreter's first extension suffix (the
    one a wheel tagged for it names): each module's extension and mypyc's shared
    library (`GROUP`) at the top; empty when one of them is missing."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    files = [_source(name).with_suffix(suffix) for name in COMPILED]
    files.append(_source(GROUP).with_name(f"{GROUP}__mypyc{suffix}"))
    return files if all(path.is_file() for path in files) else []


def describe() -> str:
    """``compiled``, or ``pure: <why>``: how this process runs the engine."""
    if _why_pure:
        return f"pure: {_why_pure}"
    missing = [name for name in COMPILED if _extension(name) is None]
    if len(missing) == len(COMPILED):
        return (
            "pure: no compiled modules for this interpreter "
            f"({sys.implementation.cache_tag}, {importlib.machinery.EXTENSION_SUFFIXES[0]})"
        )
    if missing:
        return f"partly compiled: missing {', '.join(missing)}"
    return "compiled"
