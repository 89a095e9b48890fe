"""`marteau test` (alias `fl-run-test`): run FunkLoad tests once, functionally.

``marteau test FILE [Class.method|Class|suite ...]`` imports the test module
from the CWD, builds every test with the command-line options (so ``-u``,
``-m``... override the conf file), runs them with unittest's text runner and
exits 0 when everything passed, 1 otherwise.  Bad input (no such file,
syntax error, unknown class, a missing required conf key...) exits 2 with one
``Error: ...`` line and no traceback.
"""

from __future__ import annotations

import cProfile
import doctest
import pstats
import re
import sys
import tempfile
import types
import unittest
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import click

from marteau.errors import MarteauError
from marteau.funkload import doctests
from marteau.funkload import testcase as testcase_module
from marteau.funkload.bench_options import allow_host_option, install_guard, strict_host_option
from marteau.funkload.loader import import_test_module, resolve_class
from marteau.funkload.testcase import FunkLoadTestCase, close_functional_sinks

PROFILE_TOP = 30  # lines of profile statistics printed by --profile


class FunkLoadTestLoader(unittest.TestLoader):
    """unittest's loader, but FunkLoad test cases get the command-line options."""

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    def make_test(self, klass: type[unittest.TestCase], method: str) -> unittest.TestCase:
        if issubclass(klass, FunkLoadTestCase):
            return klass(method, self.options)
        return klass(method)

    def loadTestsFromTestCase(self, testCaseClass: type) -> unittest.TestSuite:  # noqa: N802
        names = self.getTestCaseNames(testCaseClass)
        if not names and hasattr(testCaseClass, "runTest"):
            names = ["runTest"]
        return self.suiteClass([self.make_test(testCaseClass, name) for name in names])

    def load_name(self, module: types.ModuleType, name: str) -> unittest.TestSuite:
        """``Class.method``, ``Class`` or a function returning a suite (``test_suite``)."""
        head, _, method = name.partition(".")
        target = getattr(module, head, None)
        if target is None:
            raise MarteauError(f"no class or suite '{head}' in {_where(module)}")
        if isinstance(target, type):
            klass = resolve_class(module, head)
            if method:
                if not callable(getattr(klass, method, None)):
                    raise MarteauError(
                        f"{klass.__name__} has no test method '{method}' ({_where(module)})"
                    )
                return self.suiteClass([self.make_test(klass, method)])
            return self.loadTestsFromTestCase(klass)
        if method:
            raise MarteauError(f"'{head}' in {_where(module)} is not a test case class")
        if callable(target):
            suite = target()
            if isinstance(suite, unittest.TestCase):
                return self.suiteClass([suite])
            if isinstance(suite, unittest.TestSuite):
                return suite
            raise MarteauError(
                f"{head}() in {_where(module)} returned {type(suite).__name__}, not a test suite"
            )
        raise MarteauError(f"'{head}' in {_where(module)} is not a test case, class or suite")


def _where(module: types.ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__


def iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from iter_tests(item)
    else:
        yield suite


def method_name(test: unittest.TestCase) -> str:
    """What ``-e`` matches: the test method, or a doctest's name (``module.function``)."""
    if isinstance(test, doctest.DocTestCase):
        return test.id()
    return getattr(test, "test_name", None) or test._testMethodName


def filter_tests(suite: unittest.TestSuite, regex: str | None) -> unittest.TestSuite:
    """``-e RE``: keep the tests whose method name matches; a leading ``!`` negates."""
    tests = list(iter_tests(suite))
    if not regex:
        return unittest.TestSuite(tests)
    negate = regex.startswith("!")
    pattern = regex[1:] if negate else regex
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise MarteauError(f"bad --regex {regex!r}: {exc}") from None
    kept = [t for t in tests if bool(compiled.search(method_name(t))) != negate]
    return unittest.TestSuite(kept)


class MutableStream:
    """The runner's output stream; muted once bad input is found (no summary then)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.muted = False

    def write(self, text: str) -> int:
        if self.muted:
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class FunkLoadTextResult(unittest.TextTestResult):
    """Adds the last request's URL and code to failures; stops on bad input."""

    def __init__(self, stream: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(stream, *args, **kwargs)
        self.bad_input: list[MarteauError] = []
        self._mutable = getattr(stream, "stream", None)

    def _exc_info_to_string(self, err: Any, test: unittest.TestCase) -> str:
        # unittest's private formatter, which typeshed does not declare
        text = super()._exc_info_to_string(err, test)  # type: ignore[misc]
        last = getattr(test, "_last_request", None)
        if last:
            method, url, code = last
            shown = "connection failed" if code is None else f"HTTP {code}"
            text += f"Last request: {method} {url} -> {shown}\n"
        return text

    def _bad_input(self, err: Any) -> bool:
        exc = err[1]
        if isinstance(exc, MarteauError):
            self.bad_input.append(exc)
            self.stop()
            if isinstance(self._mutable, MutableStream):
                self._mutable.stream.write("\n")
                self._mutable.muted = True
            return True
        return False

    def addError(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        if not self._bad_input(err):
            super().addError(test, err)

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        if not self._bad_input(err):
            super().addFailure(test, err)


def build_options(**values: Any) -> SimpleNamespace:
    """The optparse-like options object FunkLoad test cases read."""
    debug_level = values["debug_level"] or (1 if values["debug"] else 0)
    return SimpleNamespace(
        config=values["config"],
        main_url=values["url"],
        ftest_sleep_time_min=values["sleep_time_min"],
        ftest_sleep_time_max=values["sleep_time_max"],
        ftest_simple_fetch="1" if values["simple_fetch"] else None,
        ftest_log_to="console file" if (values["debug"] or values["debug_level"]) else None,
        debug=values["debug"] or bool(values["debug_level"]),
        debug_level=debug_level,
        dump_dir=values["dump_directory"],
        firefox_view=values["firefox_view"],
        accept_invalid_links=values["accept_invalid_links"],
        stop_on_fail=values["stop_on_fail"],
        pause=values["pause"],
        loop_steps=values["loop_on_pages"],
        loop_number=values["loop_number"],
        label=None,
        no_color=values["no_color"],
    )


@click.command("test", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file")
@click.argument("names", nargs=-1)
@click.option(
    "--config", help="Alternative conf file (default <Class>.conf in $FL_CONF_PATH or .)."
)
@click.option("-u", "--url", help="Override [main] url.")
@click.option("-m", "--sleep-time-min", help="Minimum think time between pages, in seconds.")
@click.option("-M", "--sleep-time-max", help="Maximum think time between pages, in seconds.")
@click.option("--simple-fetch", is_flag=True, help="Do not load images and stylesheets.")
@click.option(
    "-e", "--regex", help="Run only the tests whose method name matches; a leading ! negates."
)
@click.option("--list", "list_only", is_flag=True, help="Print the test ids and exit.")
@click.option("-v", "--verbose", is_flag=True, help="One line per test.")
@click.option("-q", "--quiet", is_flag=True, help="Minimal output.")
@click.option("-d", "--debug", is_flag=True, help="Debug output on the console and in the log.")
@click.option(
    "--debug-level", type=int, default=0, help="2 adds logdd() lines, 3 prints request headers."
)
@click.option("--stop-on-fail", is_flag=True, help="Stop at the first failure or error.")
@click.option("--dump-directory", help="Write each page body to DIR/NNN.ext.")
@click.option("--accept-invalid-links", is_flag=True, help="Do not fail on broken img/css.")
@click.option("--pause", is_flag=True, help="Wait for ENTER instead of the think time.")
@click.option(
    "--no-color",
    is_flag=True,
    help="Accepted for FunkLoad compatibility (this command prints no colour).",
)
@click.option(
    "-V",
    "--firefox-view",
    is_flag=True,
    help="Dump each page to a temp dir (or --dump-directory) and open it in a web browser.",
)
@click.option(
    "--doctest",
    is_flag=True,
    help="Also run the module's doctests; a FILE that is not .py is run as a doctest text file.",
)
@click.option("--profile", is_flag=True, help="Run under cProfile and print the top functions.")
@click.option(
    "-l",
    "--loop-on-pages",
    help="Replay page N (or pages A:B) --loop-number times as fast as possible.",
)
@click.option("-n", "--loop-number", type=int, default=10, help="Replays in loop mode.")
@allow_host_option
@strict_host_option
def test_command(file: str, names: tuple[str, ...], **values: Any) -> None:
    """Run FunkLoad tests of FILE functionally (fl-run-test)."""
    try:
        code = run_tests(file, names, values)
    except MarteauError as exc:
        close_functional_sinks()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)


def run_tests(file: str, names: tuple[str, ...], values: dict[str, Any]) -> int:
    """Load, filter, list or run; the exit status (2 is raised as MarteauError)."""
    install_guard(values.get("allow_hosts") or (), bool(values.get("strict_host")))
    if values["firefox_view"] and not values["dump_directory"]:
        values = {**values, "dump_directory": tempfile.mkdtemp(prefix="marteau-view-")}
        click.echo(f"Pages are dumped in {values['dump_directory']}", err=True)
    options = build_options(**values)
    if values["loop_on_pages"]:
        _check_loop_steps(values["loop_on_pages"])
    testcase_module.set_default_options(options)
    suite = filter_tests(load_suite(file, names, options, values["doctest"]), values["regex"])
    if values["list_only"]:
        for test in iter_tests(suite):
            click.echo(test.id())
        return 0
    verbosity = 0 if values["quiet"] else (2 if values["verbose"] else 1)
    runner = unittest.TextTestRunner(
        stream=MutableStream(sys.stderr),
        verbosity=verbosity,
        failfast=bool(values["stop_on_fail"]),
        resultclass=FunkLoadTextResult,
    )
    try:
        result = run_profiled(runner, suite) if values["profile"] else runner.run(suite)
    finally:
        close_functional_sinks()
    bad = getattr(result, "bad_input", [])
    if bad:
        raise bad[0]
    return 0 if result.wasSuccessful() else 1


def load_suite(
    file: str, names: tuple[str, ...], options: SimpleNamespace, with_doctests: bool
) -> unittest.TestSuite:
    """The tests of FILE (its doctests too with ``--doctest``, or FILE as doctest text)."""
    if with_doctests and doctests.is_doctest_file(file):
        if names:
            raise MarteauError(f"{file} is run as a doctest text file: it takes no test names")
        return doctests.file_suite(file, traced=options.debug)
    try:
        module = import_test_module(file)
    except MarteauError as exc:
        if doctests.is_doctest_file(file):
            raise MarteauError(f"{exc}; add --doctest to run it as a doctest text file") from None
        raise
    loader = FunkLoadTestLoader(options)
    if names:
        return unittest.TestSuite([loader.load_name(module, name) for name in names])
    suite = loader.loadTestsFromModule(module)
    errors = getattr(loader, "errors", None)
    if errors:
        raise MarteauError(f"cannot load tests from {file}: {errors[0].strip()}")
    if with_doctests:
        suite.addTest(doctests.module_suite(module, traced=options.debug))
    return suite


def run_profiled(runner: unittest.TextTestRunner, suite: unittest.TestSuite) -> Any:
    """``--profile``: run under cProfile, then the 30 functions with the most own time."""
    profiler = cProfile.Profile()
    result = profiler.runcall(runner.run, suite)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats(pstats.SortKey.TIME, pstats.SortKey.CALLS).print_stats(PROFILE_TOP)
    return result


def _check_loop_steps(value: str) -> None:
    parts = value.split(":")
    if len(parts) > 2 or not all(part.strip().isdigit() for part in parts):
        raise MarteauError(f"bad --loop-on-pages {value!r}: expected N or A:B")
