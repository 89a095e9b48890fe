"""``fl-run-test --doctest``: doctests of a test module, or a doctest text file.

FunkLoad users write doctests around `FunkLoadDocTest` (a browser usable
from ``>>>`` lines); the stdlib's unittest adapters run them with the other
tests.  With ``-d`` each example is traced as doctest's verbose mode does,
which FunkLoad also did.
"""

from __future__ import annotations

import doctest
import io
import os
import sys
import types
import unittest
from collections.abc import Callable

from marteau.errors import MarteauError


class _Traced:
    """A doctest case that also prints doctest's verbose trace of each example.

    The annotated attributes come from `doctest.DocTestCase`, mixed in after.
    """

    _dt_test: doctest.DocTest
    _dt_optionflags: int
    _dt_checker: doctest.OutputChecker | None
    failureException: type[BaseException]
    format_failure: Callable[[str], str]

    def runTest(self) -> None:
        runner = doctest.DocTestRunner(
            optionflags=self._dt_optionflags, checker=self._dt_checker, verbose=True
        )
        report = io.StringIO()
        console = sys.stdout  # the runner swaps sys.stdout to capture each example's output

        def out(text: str) -> None:
            console.write(text)
            report.write(text)

        failures, _ = runner.run(self._dt_test, out=out, clear_globs=False)
        if failures:
            raise self.failureException(self.format_failure(report.getvalue()))


class TracedDocTestCase(_Traced, doctest.DocTestCase):
    """A module doctest traced example by example (``-d``)."""


class TracedDocFileCase(_Traced, doctest.DocFileCase):
    """A doctest text file traced example by example (``-d``)."""


def _traced(suite: unittest.TestSuite) -> unittest.TestSuite:
    # doctest builds its own case classes; switching them to the traced
    # subclasses (same layout, one method more) keeps everything else it set up.
    for case in suite:
        if isinstance(case, doctest.DocFileCase):
            case.__class__ = TracedDocFileCase
        elif isinstance(case, doctest.DocTestCase):
            case.__class__ = TracedDocTestCase
    return suite


def is_doctest_file(arg: str) -> bool:
    """An existing file that is not Python source: ``--doctest`` reads it as doctest text."""
    return os.path.isfile(arg) and not arg.endswith(".py")


def module_suite(module: types.ModuleType, traced: bool = False) -> unittest.TestSuite:
    """The doctests in the docstrings of ``module`` (none is an empty suite)."""
    try:
        suite = doctest.DocTestSuite(module)
    except ValueError as exc:  # doctest's parser: bad indentation or prompt in an example
        raise MarteauError(f"doctests of {module.__name__}: {exc}") from None
    return _traced(suite) if traced else suite


def file_suite(path: str, traced: bool = False) -> unittest.TestSuite:
    """The doctest text file ``path`` as one test."""
    try:
        suite = doctest.DocFileSuite(os.path.abspath(path), module_relative=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MarteauError(f"{path}: not a UTF-8 doctest text file ({exc.reason})") from None
    except ValueError as exc:
        raise MarteauError(f"{path}: {exc}") from None
    return _traced(suite) if traced else suite
