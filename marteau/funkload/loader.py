"""Import a FunkLoad test module and find a test in it, as fl-run-test/bench do.

The CWD goes first on ``sys.path`` and a file argument is reduced to its
module name, so a test imports exactly as it did under FunkLoad (``HERE``
tricks and sibling imports included).  Every way this can go wrong becomes
one `MarteauError` that names the file, the line or the name at fault.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
import types
import unittest

from marteau.errors import MarteauError


def module_name_for(arg: str) -> tuple[str, str | None]:
    """``(module name, file path or None)`` for a command-line test argument."""
    if os.path.isfile(arg) or arg.endswith(".py"):
        if not os.path.isfile(arg):
            raise MarteauError(f"test file not found: {arg}")
        base = os.path.basename(arg)
        name = base[:-3] if base.endswith(".py") else os.path.splitext(base)[0]
        return name, os.path.abspath(arg)
    return arg, None


def import_test_module(arg: str) -> types.ModuleType:
    """Import the test module named (or pointed to) by ``arg`` from the CWD."""
    cwd = os.getcwd()
    if not sys.path or sys.path[0] != cwd:
        sys.path.insert(0, cwd)
    name, path = module_name_for(arg)
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise MarteauError(f"not a test file or module name: {arg}")
    if path is not None and os.path.dirname(path) != cwd and name not in sys.modules:
        spec = importlib.util.find_spec(name) if _findable(name) else None
        if spec is None or spec.origin is None or os.path.abspath(spec.origin) != path:
            raise MarteauError(
                f"{arg}: the test module '{name}' must be importable from the current "
                f"directory ({cwd}); cd into {os.path.dirname(path)} first"
            )
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        where = exc.filename or path or name
        raise MarteauError(f"{where}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        if exc.name == name or (exc.name and name.startswith(exc.name + ".")):
            raise MarteauError(f"test module not found: {arg} (searched from {cwd})") from None
        raise MarteauError(_import_failure(arg, path, exc)) from None
    except Exception as exc:  # the test module's own code failed
        raise MarteauError(_import_failure(arg, path, exc)) from None


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import_failure(arg: str, path: str | None, exc: BaseException) -> str:
    """Name the exception and the test file line where importing failed."""
    where = path or arg
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename]
    if user:
        last = user[-1]
        where = f"{last.filename}, line {last.lineno}"
    return f"cannot import {arg}: {type(exc).__name__}: {exc} ({where})"


def resolve_test(module: types.ModuleType, spec: str) -> tuple[type, str]:
    """``"Class.method"`` → (the test case class, the method name)."""
    class_name, sep, method = spec.partition(".")
    if not sep or not class_name or not method:
        raise MarteauError(f"expected Class.method, got '{spec}'")
    klass = resolve_class(module, class_name)
    if not callable(getattr(klass, method, None)):
        raise MarteauError(f"{klass.__name__} has no test method '{method}' ({_where(module)})")
    return klass, method


def resolve_class(module: types.ModuleType, class_name: str) -> type:
    """The test case class ``class_name`` of ``module``."""
    klass = getattr(module, class_name, None)
    if klass is None:
        raise MarteauError(f"no class '{class_name}' in {_where(module)}")
    if not isinstance(klass, type) or not issubclass(klass, unittest.TestCase):
        raise MarteauError(f"'{class_name}' in {_where(module)} is not a test case class")
    return klass


def _where(module: types.ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__
