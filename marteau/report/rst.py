"""``index.rst``: FunkLoad's bench report text, byte for byte where it matters.

Why byte for byte: FunkLoad's ``--diff`` reads the "Page stats" and
"Request stats" tables (it finds the line ``Page stats``, then takes the
rows between the second and third line starting with `` =====``) and
``--trend`` reads the ``* Launched: `` and ``* Cycles of concurrent
users: `` lines.  So the tables use FunkLoad's format exactly: 18-character
columns (``%18d``, ``%18.3f``, ``%18s``, ERROR ``%16.2f%%``), one space
between columns, a leading space (plus 4 for page detail tables), ``=``
delimiter rows, ``\\* Apdex |APDEXT|`` footnotes.

Marteau's additions (tail percentiles, nodes, HTTP codes, load
generators, thresholds) come in their own sections after "Failures and
Errors", so FunkLoad's sections keep their order.  One deliberate
deviation: tracebacks are indented line by line so that the literal
block stays valid ReST (FunkLoad only indented the first line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from marteau import __version__
from marteau.report.stats import (
    BenchStats,
    CycleStats,
    StepStats,
    apdex_label,
    launched,
    slowest_requests,
)

FMT_INT = "%18d"
FMT_FLOAT = "%18.3f"
FMT_STR = "%18s"
FMT_PERCENT = "%16.2f%%"
DECO = "=" * 18
LI = "*"
FUNKLOAD_VERSION = "1.17.2"
PERCENTILE_HEADERS = ("P10", "MED", "P90", "P95")
_PERCENTILE_KEYS = ("p10", "p50", "p90", "p95")
APDEX_FOOTNOTE = "\\* Apdex |APDEXT|"

TEST_HEADERS = ("CUs", "STPS", "TOTAL", "SUCCESS", "ERROR")
PAGE_HEADERS = (
    "CUs", "Apdex*", "Rating", "SPPS", "maxSPPS", "TOTAL", "SUCCESS", "ERROR", "MIN", "AVG", "MAX",
)  # fmt: skip
REQUEST_HEADERS = (
    "CUs", "Apdex*", "Rating*", "RPS", "maxRPS", "TOTAL", "SUCCESS", "ERROR", "MIN", "AVG", "MAX",
)  # fmt: skip
STEP_HEADERS = ("CUs", "Apdex*", "Rating", "TOTAL", "SUCCESS", "ERROR", "MIN", "AVG", "MAX")


def title(text: str, level: int = 1) -> str:
    """A ReST title: level 0 is over- and underlined, 1 '=', 2 '-', 3 '~'."""
    char = "==-~"[level]
    lines = [char * len(text)] if level == 0 else [""]
    lines += [text, char * len(text), ""]
    return "\n".join(lines)


class Table:
    """One FunkLoad table: header, rows, footer, with an indent of 0 or 4."""

    def __init__(self, headers: Sequence[str], indent: int = 0, apdex: bool = False) -> None:
        self.headers = list(headers)
        self.indent = " " * indent
        self.apdex = apdex

    def deco(self) -> str:
        return self.indent + " " + " ".join([DECO] * len(self.headers))

    def header(self, images: Sequence[str] = ()) -> str:
        lines = []
        if images:
            lines += [f"{self.indent} .. image:: {name}.png" for name in images]
            lines.append("")
        names = " " + " ".join(FMT_STR % h for h in self.headers)
        lines += [self.deco(), self.indent + names, self.deco()]
        return "\n".join(lines)

    def row(self, cells: Sequence[str]) -> str:
        return " ".join([self.indent, *cells])

    def footer(self) -> str:
        text = self.deco() + "\n\n"
        if self.apdex:
            text += self.indent + " " + APDEX_FOOTNOTE
        return text


def _percentile_cells(percentiles: dict[str, float]) -> list[str]:
    return [FMT_FLOAT % percentiles[key] for key in _PERCENTILE_KEYS]


def test_row(stats: Any) -> list[str]:
    return [
        FMT_INT % stats.cvus,
        FMT_FLOAT % stats.stps,
        FMT_INT % stats.count,
        FMT_INT % stats.success,
        FMT_PERCENT % stats.error_percent,
    ]


def _timed_row(stats: Any, rate: float, max_rate: int, percentiles: bool) -> list[str]:
    cells = [
        FMT_INT % stats.cvus,
        FMT_FLOAT % stats.apdex.score,
        FMT_STR % apdex_label(stats.apdex.score),
        FMT_FLOAT % rate,
        FMT_FLOAT % max_rate,
        FMT_INT % stats.count,
        FMT_INT % stats.success,
        FMT_PERCENT % stats.error_percent,
        FMT_FLOAT % stats.min,
        FMT_FLOAT % stats.avg,
        FMT_FLOAT % stats.max,
    ]
    return cells + (_percentile_cells(stats.percentiles) if percentiles else [])


def page_row(stats: Any, percentiles: bool = True) -> list[str]:
    return _timed_row(stats, stats.spps, stats.max_spps, percentiles)


def request_row(stats: Any, percentiles: bool = True) -> list[str]:
    return _timed_row(stats, stats.rps, stats.max_rps, percentiles)


def step_row(stats: StepStats, percentiles: bool = True) -> list[str]:
    cells = [
        FMT_INT % stats.cvus,
        FMT_FLOAT % stats.apdex.score,
        FMT_STR % apdex_label(stats.apdex.score),
        FMT_INT % stats.count,
        FMT_INT % stats.success,
        FMT_PERCENT % stats.error_percent,
        FMT_FLOAT % stats.min,
        FMT_FLOAT % stats.avg,
        FMT_FLOAT % stats.max,
    ]
    return cells + (_percentile_cells(stats.percentiles) if percentiles else [])


def _cell(value: str) -> str:
    """A string cell, cut to the column width so the table stays aligned."""
    return FMT_STR % (value if len(value) <= 18 else value[:17] + "~")


def _indent(text: str, spaces: int = 4) -> str:
    return "\n".join((" " * spaces + line) if line.strip() else "" for line in text.splitlines())


class RstReport:
    """Renders a `BenchStats` as FunkLoad's ``index.rst``."""

    def __init__(
        self,
        stats: BenchStats,
        *,
        with_percentiles: bool = True,
        with_charts: bool = False,
        skip_definitions: bool = False,
        thresholds: dict[str, Any] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.stats = stats
        self.with_percentiles = with_percentiles
        self.with_charts = with_charts
        self.skip_definitions = skip_definitions
        self.thresholds = thresholds
        self.notes = list(notes)
        self.lines: list[str] = []

    def add(self, *texts: str) -> None:
        self.lines.extend(texts)

    def headers(self, base: Sequence[str]) -> list[str]:
        return list(base) + (list(PERCENTILE_HEADERS) if self.with_percentiles else [])

    # -- FunkLoad's sections ------------------------------------------------

    def header(self) -> None:
        config = self.stats.config
        self.add(title("FunkLoad_ bench report", 0), "", ":date: " + launched(config))
        abstract = [
            config.get("class_description", ""),
            "Bench result of ``{}.{}``: ".format(config.get("class", ""), config.get("method", "")),
            config.get("description", ""),
        ]
        self.add(":abstract: " + "\n           ".join(abstract), "")
        self.add(
            ".. _FunkLoad: http://funkload.nuxeo.org/",
            ".. sectnum::    :depth: 2",
            ".. contents:: Table of contents",
            f".. |APDEXT| replace:: \\ :sub:`{self.stats.apdex_t:.1f}`",
        )

    def configuration(self) -> None:
        config = self.stats.config
        self.add(title("Bench configuration", 2))
        self.add(f"{LI} Launched: {launched(config)}")
        if config.get("node"):
            self.add(f"{LI} From: {config['node']}")
        self.add(
            "{} Test: ``{}.py {}.{}``".format(
                LI, config.get("module", ""), config.get("class", ""), config.get("method", "")
            )
        )
        if config.get("label"):
            self.add(f"{LI} Label: {config['label']}")
        self.add(f"{LI} Target server: {config.get('server_url', '')}")
        self.add(f"{LI} Cycles of concurrent users: {config.get('cycles', '')}")
        self.add(f"{LI} Cycle duration: {config.get('duration', '')}s")
        self.add(
            f"{LI} Sleeptime between request: from {config.get('sleep_time_min', '')}s "
            f"to {config.get('sleep_time_max', '')}s"
        )
        self.add(f"{LI} Sleeptime between test case: {config.get('sleep_time', '')}s")
        self.add(f"{LI} Startup delay between thread: {config.get('startup_delay', '')}s")
        self.add(f"{LI} Apdex: |APDEXT|")
        self.add(f"{LI} FunkLoad_ version: {config.get('version') or FUNKLOAD_VERSION}")
        self.add("")
        meta = [(k[5:], v) for k, v in config.items() if k.startswith("meta:")]
        if meta:
            self.add("Bench metadata:", "")
            self.add(*(f"{LI} {k}: {v}" for k, v in meta))
            self.add("")
        notes = self.notes + list(self.stats.warnings)
        if notes:
            self.add("Warnings:", "")
            self.add(*(f"{LI} {_one_line(note)}" for note in notes))
            self.add("")

    def content(self, cycle: CycleStats) -> None:
        tests = cycle.tests
        if tests is None:
            return
        config = self.stats.config
        totals = self.stats.totals
        self.add(title("Bench content", 2))
        self.add(
            "The test ``{}.{}`` contains: ".format(
                config.get("class", ""), config.get("method", "")
            ),
            "",
        )
        self.add(
            f"{LI} {tests.pages} page(s)",
            f"{LI} {tests.redirects} redirect(s)",
            f"{LI} {tests.links} link(s)",
            f"{LI} {tests.images} image(s)",
            f"{LI} {tests.xmlrpc} XML RPC call(s)",
            "",
            "The bench contains:",
            "",
        )

        def errors(n: int) -> str:
            return f", {n} error(s)" if n else ""

        self.add(
            f"{LI} {totals.tests} tests" + errors(totals.tests_error),
            f"{LI} {totals.pages} pages" + errors(totals.pages_error),
            f"{LI} {totals.requests} requests" + errors(totals.requests_error),
            "",
        )

    def cycles_table(
        self,
        kind: str,
        heading: str,
        description: str,
        table: Table,
        part: Callable[[CycleStats], Any],
        row: Callable[[Any], list[str]],
        images: Sequence[str],
    ) -> None:
        self.add(title(heading, 2), description, "")
        rows = [row(part(c)) for c in self.stats.cycles if part(c) is not None]
        if not rows:
            self.add(
                f"Sorry no {kind} have finished during a cycle, the cycle duration is too short.\n"
            )
            return
        self.add(table.header(images if self.with_charts else ()))
        self.add(*(table.row(cells) for cells in rows))
        self.add(table.footer())

    def slowest(self) -> None:
        self.add(title("Slowest requests", 2))
        best = self.stats.cycle(self.stats.best_cycle)
        if best is None:
            return
        self.add(
            f"The 5 slowest average response time during the best cycle with **{best.cvus}** CUs:\n"
        )
        for step in slowest_requests(self.stats, 5):
            self.add(
                f"{LI} In page {step.step:03d}, Apdex rating: {apdex_label(step.apdex.score)}, "
                f"avg response time: {step.avg:3.2f}s, {step.type}: ``{step.url}``\n"
                f"  `{step.description}`"
            )

    def page_detail(self, cycle: CycleStats) -> None:
        self.add(title("Page detail stats", 2))
        current = None
        table = Table(self.headers(STEP_HEADERS), indent=4, apdex=True)
        steps_by_cycle = [{s.key: s for s in c.steps} for c in self.stats.cycles]
        for step in cycle.steps:
            if step.step != current:
                current = step.step
                self.add(title(f"PAGE {step.step:03d}: {step.description or step.url}", 3))
            self.add(f"{LI} Req: {step.number:03d}, {step.type}, url ``{step.url}``", "")
            rows = [
                step_row(by_key[step.key], self.with_percentiles)
                for by_key in steps_by_cycle
                if step.key in by_key
            ]
            images = [f"request_{step.key}"] if self.with_charts else []
            self.add(table.header(images))
            self.add(*(table.row(cells) for cells in rows))
            self.add(table.footer())

    def errors(self) -> None:
        groups = self.stats.errors
        if not groups:
            return
        self.add(title("Failures and Errors", 2))
        for result in ("Failure", "Error"):
            mine = [g for g in groups if g.result == result]
            if not mine:
                continue
            self.add(title(result + "s", 3))
            for group in mine:
                if group.exception_file:
                    self.add(
                        f"{LI} {group.count} time(s), code: {group.code}, {group.exception_type}\n"
                        f"  in {group.exception_file}, line {group.exception_line}: "
                        f"{group.exception_value}"
                    )
                else:
                    traceback = group.traceback or "No traceback."
                    self.add(
                        f"{LI} {group.count} time(s), code: {group.code}::\n\n{_indent(traceback)}\n"
                    )

    def definitions(self) -> None:
        self.add(title("Definitions", 2))
        self.add(
            f"{LI} CUs: concurrent users, the number of virtual users running the test in a loop.",
            f"{LI} Request: one HTTP exchange: a GET, POST, redirect, XML-RPC call, image, link...",
            f"{LI} Page: a page request together with its redirects and the resources it loads"
            " (images, css, js).",
            f"{LI} STPS: successful tests per second.",
            f"{LI} SPPS: successful pages per second.",
            f"{LI} RPS: requests per second, successful or not.",
            f"{LI} maxSPPS: the highest number of successful pages started within one second"
            " of the cycle.",
            f"{LI} maxRPS: the highest number of requests started within one second of the cycle.",
            f"{LI} MIN: the shortest response time of a page or request.",
            f"{LI} AVG: the average response time of a page or request.",
            f"{LI} MAX: the longest response time of a page or request.",
            f"{LI} P10: 10th percentile: 10 percent of the pages or requests took at most this.",
            f"{LI} MED: median (50th percentile): half of the pages or requests took at most this.",
            f"{LI} P90: 90th percentile: 90 percent of the pages or requests took at most this.",
            f"{LI} P95: 95th percentile: 95 percent of the pages or requests took at most this.",
            f"{LI} Apdex T: the Application Performance Index, a 0 to 1 measure of user"
            " satisfaction\n"
            "  from response times, with a target time T (here |APDEXT| seconds):\n\n"
            "  - Satisfied: the response came in less than T seconds.\n\n"
            "  - Tolerating: it took between T and 4*T seconds.\n\n"
            "  - Frustrated: it took 4*T seconds or more.\n\n"
            "  The score is (satisfied + tolerating / 2) / all responses. See"
            " http://www.apdex.org/.",
            f"{LI} Rating: the Apdex score as a rating:\n\n"
            "  - U for UNACCEPTABLE, a score below 0.5\n\n"
            "  - P for POOR, from 0.5 to below 0.7\n\n"
            "  - F for FAIR, from 0.7 to below 0.85\n\n"
            "  - G for Good, from 0.85 to below 0.94\n\n"
            "  - E for Excellent, from 0.94 to 1.",
            "",
            f"Report generated with Marteau {__version__}, compatible with FunkLoad_ "
            f"{FUNKLOAD_VERSION} reports.",
        )

    # -- Marteau's additions ------------------------------------------------

    def tails(self) -> None:
        headers = ("CUs", "P95", "P99", "P99.9", "MAX")
        rows: list[tuple[str, list[list[str]]]] = []
        for name, attribute in (("Pages", "pages"), ("Requests", "requests")):
            lines = []
            for cycle in self.stats.cycles:
                stats = getattr(cycle, attribute)
                if stats is None:
                    continue
                p = stats.percentiles
                lines.append(
                    [
                        FMT_INT % stats.cvus,
                        FMT_FLOAT % p["p95"],
                        FMT_FLOAT % p["p99"],
                        FMT_FLOAT % p["p99_9"],
                        FMT_FLOAT % stats.max,
                    ]
                )
            if lines:
                rows.append((name, lines))
        if not rows:
            return
        self.add(title("Response time tails", 2))
        self.add(
            "P99 and P99.9 of successful pages and of all requests, per cycle"
            " (same sorted-index rule as the other percentiles).",
            "",
        )
        for name, lines in rows:
            table = Table(headers)
            self.add(f"**{name}**", "", table.header())
            self.add(*(table.row(cells) for cells in lines))
            self.add(table.footer())

    def nodes(self) -> None:
        nodes = self.stats.nodes
        if len(nodes) < 2:
            return
        self.add(title("Nodes", 2))
        self.add(f"The bench ran on {len(nodes)} nodes; each node's requests per cycle:", "")
        headers = [
            "CUs",
            "RPS",
            "maxRPS",
            "TOTAL",
            "SUCCESS",
            "ERROR",
            "MIN",
            "AVG",
            "MAX",
            "P95",
            "P99",
        ]
        for node in nodes:
            table = Table(headers)
            self.add(f"**{node.name}** (``{node.source}``)", "", table.header())
            for stats in node.cycles:
                self.add(
                    table.row(
                        [
                            FMT_INT % stats.cvus,
                            FMT_FLOAT % stats.rps,
                            FMT_FLOAT % stats.max_rps,
                            FMT_INT % stats.count,
                            FMT_INT % stats.success,
                            FMT_PERCENT % stats.error_percent,
                            FMT_FLOAT % stats.min,
                            FMT_FLOAT % stats.avg,
                            FMT_FLOAT % stats.max,
                            FMT_FLOAT % stats.percentiles["p95"],
                            FMT_FLOAT % stats.percentiles["p99"],
                        ]
                    )
                )
            self.add(table.footer())

    def http_codes(self) -> None:
        codes = self.stats.http_codes
        if not codes:
            return
        self.add(title("HTTP status codes", 2))
        self.add("Responses by status code (-1: no HTTP answer, see Errors).", "")
        table = Table(("CODE", "TOTAL", "SUCCESS", "FAILURE", "ERROR"))
        self.add(table.header())
        for code in codes:
            self.add(
                table.row(
                    [
                        FMT_INT % code.code,
                        FMT_INT % code.count,
                        FMT_INT % code.success,
                        FMT_INT % code.failure,
                        FMT_INT % code.error,
                    ]
                )
            )
        self.add(table.footer())
        for code in codes:
            if code.sample_body:
                self.add(
                    f"{LI} Sample body of a {code.code} response, ``{_one_line(code.sample_url)}``::\n\n"
                    f"{_indent(code.sample_body)}\n"
                )

    def generators(self) -> None:
        nodes = [n for n in self.stats.nodes if n.cpu is not None]
        if not nodes:
            return
        self.add(title("Load generators", 2))
        self.add(
            "CPU used by the load generator processes, percent of one core; above 80%"
            " response times may include client-side queueing.",
            "",
        )
        table = Table(("NODE", "SAMPLES", "MAX CPU%", "MEAN CPU%", "STATUS"))
        self.add(table.header())
        for node in nodes:
            cpu = node.cpu
            assert cpu is not None
            self.add(
                table.row(
                    [
                        _cell(node.name),
                        FMT_INT % cpu.samples,
                        FMT_FLOAT % cpu.max,
                        FMT_FLOAT % cpu.mean,
                        FMT_STR % ("OVERLOADED" if cpu.warning else "ok"),
                    ]
                )
            )
        self.add(table.footer())

    def threshold_section(self) -> None:
        report = self.thresholds
        if not report:
            return
        self.add(title("Thresholds", 2))
        verdict = "all passed" if report["passed"] else "FAILED"
        self.add(
            f"Thresholds from ``{report['source']}`` (scope: {report['scope']}): {verdict}.", ""
        )
        for result in report["results"]:
            mark = "PASS" if result["passed"] else "**FAIL**"
            self.add(f"{LI} {mark}: {_one_line(result['message'])}")
        self.add("")

    # -- the whole report ---------------------------------------------------

    def render(self) -> str:
        stats = self.stats
        self.lines = []
        self.header()
        self.configuration()
        if not stats.cycles:
            self.add("No cycle found")
            return "\n".join(self.lines)
        representative = stats.cycle(stats.representative_cycle)
        assert representative is not None
        self.content(representative)
        self.cycles_table(
            "test",
            "Test stats",
            "The number of Successful **Tests** Per Second (STPS) over Concurrent Users (CUs).",
            Table(TEST_HEADERS),
            lambda c: c.tests,
            test_row,
            ["tests"],
        )
        self.cycles_table(
            "page",
            "Page stats",
            "The number of Successful **Pages** Per Second (SPPS) over Concurrent Users (CUs).\n"
            "Note that an XML RPC call count like a page.",
            Table(self.headers(PAGE_HEADERS), apdex=True),
            lambda c: c.pages,
            lambda s: page_row(s, self.with_percentiles),
            ["pages_spps", "pages"],
        )
        self.cycles_table(
            "response",
            "Request stats",
            "The number of **Requests** Per Second (RPS) successful or not over Concurrent Users"
            " (CUs).",
            Table(self.headers(REQUEST_HEADERS), apdex=True),
            lambda c: c.requests,
            lambda s: request_row(s, self.with_percentiles),
            ["requests_rps", "requests"],
        )
        self.slowest()
        self.page_detail(representative)
        self.errors()
        self.tails()
        self.nodes()
        self.http_codes()
        self.generators()
        self.threshold_section()
        if not self.skip_definitions:
            self.definitions()
        return "\n".join(self.lines)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def render_rst(stats: BenchStats, **options: Any) -> str:
    """FunkLoad's ``index.rst`` for `stats`; options as `RstReport`."""
    return RstReport(stats, **options).render()
