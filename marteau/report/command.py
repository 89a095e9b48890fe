"""``marteau report`` (alias ``fl-build-report``): FunkLoad's report builder.

Usage as FunkLoad's: ``marteau report [options] RESULTS...`` where the
results are FunkLoad XML or Marteau compact files, several meaning several
nodes of one bench (merged, see `marteau.results.merge`).  Without
``--html`` the ReST report goes to stdout; with it, a report directory
``<id>-<YYYYMMDDTHHMMSS>[-label]`` receives ``index.rst``,
``summary.json``, a copy of the results (``funkload.xml``) and, when the
HTML renderer is installed (`marteau.report.html.render_html`), the HTML
report and charts.  Unusable inputs are skipped with a reason; the command
fails only when nothing can be built (exit 2) or a threshold is violated
(exit 1, after writing everything).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from typing import Any

import click

from marteau.errors import MarteauError
from marteau.monitor.samples import read_host
from marteau.report import rst, stats, summary
from marteau.report.junit import write_junit
from marteau.report.monitoring import cycle_averages, keyed
from marteau.report.org import render_org
from marteau.report.stats import BenchStats
from marteau.report.thresholds import evaluate, load_thresholds
from marteau.results.compact import lost_load
from marteau.results.merge import Merged, is_compact_source, load_all, write_merged_xml
from marteau.results.resultset import ResultSet


def report_directory_name(config: dict[str, str]) -> str:
    """FunkLoad's ``<id>-<stamp>[-label]``, stamp = root time[:19] without '-' and ':'."""
    stamp = config.get("marteau:time", config.get("time", ""))[:19]
    stamp = stamp.replace("-", "").replace(":", "")
    name = f"{config.get('id') or 'bench'}-{stamp}" if stamp else config.get("id") or "bench"
    if config.get("label"):
        name += f"-{config['label']}"
    return name.replace(os.sep, "_")


def _html_renderer() -> Any:
    """The HTML renderer (built by another part of Marteau), or None while it is absent."""
    try:
        module = importlib.import_module("marteau.report.html")
    except ImportError:
        return None
    return getattr(module, "render_html", None)


def _copy_results(merged: Merged, directory: str) -> list[str]:
    """FunkLoad copies its input as funkload.xml (the merged file for several)."""
    sources = merged.sources
    written = []
    if len(sources) == 1:
        rs = sources[0]
        name = "funkload.xml" if not is_compact_source(rs) else os.path.basename(rs.source)
        shutil.copyfile(rs.source, os.path.join(directory, name))
        written.append(name)
    elif not any(is_compact_source(rs) for rs in sources):
        write_merged_xml(merged, os.path.join(directory, "funkload.xml"))
        written.append("funkload.xml")
    else:
        for node, rs in zip(merged.nodes, sources, strict=True):
            name = f"{node.name}-{os.path.basename(rs.source)}".replace(os.sep, "_")
            shutil.copyfile(rs.source, os.path.join(directory, name))
            written.append(name)
    return written


def build_report(
    results: tuple[str, ...],
    *,
    html: bool = False,
    output_directory: str = ".",
    report_directory: str | None = None,
    apdex_t: float = 1.5,
    css: str | None = None,
    skip_definitions: bool = False,
    with_percentiles: bool = True,
    thresholds: str | None = None,
    org: bool = False,
    node_names: dict[str, str] | None = None,
    missing_nodes: dict[str, str] | None = None,
    warnings: tuple[str, ...] = (),
    monitors: tuple[str, ...] = (),
) -> int:
    """Build the report; returns the exit status (0, or 1 when a threshold failed).

    `node_names`: result path -> node name (overrides the files' own);
    `missing_nodes`: node name -> reason, for nodes planned but without
    results (named in the warnings and in summary.json ``missing_nodes``);
    `warnings`: what the run noticed outside the results (a firewall's drops);
    `monitors`: monitored hosts' sample directories (`marteau.monitor.samples`),
    keyed by the bench's cycles and added to the results' monitor records.
    """
    threshold_set = None
    if thresholds:
        threshold_set = load_thresholds(thresholds)
    merged = load_all(list(results), node_names)
    if monitors:
        _add_monitors(merged.results, monitors)
    for skipped in merged.skipped:
        click.echo(f"Warning: {skipped.reason}", err=True)
    bench = _bench_stats(merged, apdex_t, missing_nodes or {}, warnings)
    threshold_report = None
    if threshold_set is not None:
        threshold_report = evaluate(threshold_set, bench)
    renderer = _html_renderer() if html else None
    options: dict[str, Any] = dict(
        with_percentiles=with_percentiles,
        with_charts=renderer is not None,
        skip_definitions=skip_definitions,
        thresholds=threshold_report,
        notes=[s.reason for s in merged.skipped if s.reason not in bench.warnings],
    )
    text = rst.render_rst(bench, **options)
    org_text = None
    if org:
        org_text = render_org(bench, **options)
    data = _summary(bench, merged, threshold_report, missing_nodes)
    if html:
        directory = report_directory or os.path.join(
            output_directory, report_directory_name(bench.config)
        )
        _write_directory(directory, text, org_text, data, merged, css, threshold_report)
        shown = directory
        if renderer is not None:
            shown = (
                renderer(
                    directory,
                    bench,
                    data,
                    css=css,
                    results=merged.results,
                    with_percentiles=with_percentiles,
                    skip_definitions=skip_definitions,
                )
                or directory
            )
        click.echo(os.path.abspath(shown))
    else:
        click.echo(org_text if org_text is not None else text)
        if threshold_report is not None:
            os.makedirs(output_directory, exist_ok=True)
            write_junit(output_directory, threshold_report)
    return _threshold_status(threshold_report)


def _bench_stats(
    merged: Merged, apdex_t: float, missing_nodes: dict[str, str], warnings: tuple[str, ...]
) -> BenchStats:
    """The statistics, with the warnings of the run: missing nodes, its own, load lost."""
    bench = stats.compute(
        merged.results, apdex_t=apdex_t, nodes=merged.nodes, thread_base=merged.thread_base
    )
    for name, why in missing_nodes.items():
        bench.warnings.append(f"node {name}: missing from this report ({why or 'no results'})")
    bench.warnings.extend(warnings)
    for node, source in zip(merged.nodes, merged.sources, strict=True):
        bench.warnings += [
            f"node {node.name}: load lost: {text}" for text in lost_load(source.config)
        ]
    return bench


def _summary(
    bench: BenchStats,
    merged: Merged,
    threshold_report: dict[str, Any] | None,
    missing_nodes: dict[str, str] | None,
) -> dict[str, Any]:
    """summary.json's data: the statistics, inputs, thresholds, missing nodes, monitors."""
    data = summary.build_summary(bench, inputs=merged.inputs(), thresholds=threshold_report)
    if missing_nodes:
        data["missing_nodes"] = [{"node": n, "reason": r} for n, r in missing_nodes.items()]
    if merged.results.monitors:
        data["monitors"] = cycle_averages(merged.results.monitors, merged.results.config)
    return data


def _write_directory(
    directory: str,
    text: str,
    org_text: str | None,
    data: dict[str, Any],
    merged: Merged,
    css: str | None,
    threshold_report: dict[str, Any] | None,
) -> None:
    """The report directory's files before the HTML: index.rst/.org, summary.json, inputs."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "index.rst"), "w", encoding="utf-8") as f:
        f.write(text)
    if org_text is not None:
        with open(os.path.join(directory, "index.org"), "w", encoding="utf-8") as f:
            f.write(org_text)
    summary.write_summary(directory, data)
    _copy_results(merged, directory)
    if css:
        shutil.copyfile(css, os.path.join(directory, os.path.basename(css)))
    if threshold_report is not None:
        write_junit(directory, threshold_report)


def _threshold_status(threshold_report: dict[str, Any] | None) -> int:
    """1 when a threshold failed (each named on stderr), else 0."""
    if threshold_report is None:
        return 0
    failed = [r for r in threshold_report["results"] if not r["passed"]]
    for result in failed:
        click.echo(f"Threshold failed: {result['message']}", err=True)
    if failed:
        return 1
    click.echo(f"All {len(threshold_report['results'])} threshold(s) passed.", err=True)
    return 0


def _add_monitors(results: ResultSet, directories: tuple[str, ...]) -> None:
    """Each directory's samples, keyed by the bench's cycles, as monitor records."""
    for directory in directories:
        host = read_host(directory)
        results.monitors.extend(keyed(host.samples, results.config))
        results.config.setdefault(host.name, host.description)


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results", nargs=-1, type=click.Path())
@click.option(
    "-H", "--html", is_flag=True, help="Write a report directory (index.rst, summary.json, HTML)."
)
@click.option(
    "--org",
    is_flag=True,
    help="Emacs org-mode report to stdout (with --html: index.org in the report directory).",
)
@click.option(
    "-P",
    "--with-percentiles/--no-percentiles",
    default=True,
    show_default=True,
    help="P10/MED/P90/P95 columns in the tables.",
)
@click.option(
    "-d", "--diff", "diff", is_flag=True, help="Differential report of 2 report directories."
)
@click.option(
    "-t", "--trend", "trend", is_flag=True, help="Trend report of 2 or more report directories."
)
@click.option(
    "-o",
    "--output-directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Parent directory of the generated report directory.",
)
@click.option(
    "-r", "--report-directory", type=click.Path(file_okay=False), help="Exact report directory."
)
@click.option(
    "-T",
    "--apdex-T",
    "apdex_t",
    type=float,
    default=1.5,
    show_default=True,
    help="Apdex T, seconds.",
)
@click.option(
    "-x", "--css", type=click.Path(dir_okay=False), help="Custom CSS file for the HTML report."
)
@click.option("--skip-definitions", is_flag=True, help="Leave out the Definitions section.")
@click.option("-q", "--quiet", is_flag=True, help="Fewer messages.")
@click.option(
    "--thresholds",
    type=click.Path(dir_okay=False),
    help="YAML thresholds (a list, a map, or a .marteau.yml 'thresholds:' key); "
    "exit 1 and junit.xml when one is violated.",
)
@click.option(
    "--node-name",
    "node_name",
    multiple=True,
    metavar="PATH=NAME",
    help="Name the node of result file PATH (repeatable; default: the name in the file).",
)
@click.option(
    "--missing-node",
    "missing_node",
    multiple=True,
    metavar="'NAME: REASON'",
    help="A node that delivered no results, named in the report's warnings (repeatable).",
)
@click.option(
    "--warning",
    "warning",
    multiple=True,
    metavar="TEXT",
    help="A warning to show in the report and summary.json (repeatable).",
)
@click.option(
    "--monitor",
    "monitor",
    multiple=True,
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="A monitored host's samples (samples.jsonl, host.json; `marteau run` writes "
    "them), charted and averaged per cycle (repeatable).",
)
def report_command(
    results: tuple[str, ...],
    html: bool,
    org: bool,
    with_percentiles: bool,
    diff: bool,
    trend: bool,
    output_directory: str,
    report_directory: str | None,
    apdex_t: float,
    css: str | None,
    skip_definitions: bool,
    quiet: bool,
    thresholds: str | None,
    node_name: tuple[str, ...] = (),
    missing_node: tuple[str, ...] = (),
    warning: tuple[str, ...] = (),
    monitor: tuple[str, ...] = (),
) -> None:
    """Build a FunkLoad-style report from bench RESULTS (XML or .mrt files; several = nodes)."""
    try:
        if apdex_t <= 0:
            raise MarteauError(f"--apdex-T must be positive, not {apdex_t}")
        if diff or trend:
            _diff_or_trend(results, diff, output_directory, report_directory)
            return
        if not results:
            raise click.UsageError("give at least one result file")
        if css and not os.path.isfile(css):
            raise MarteauError(f"{css}: CSS file not found")
        status = build_report(
            results,
            html=html,
            output_directory=output_directory,
            report_directory=report_directory,
            apdex_t=apdex_t,
            css=css,
            skip_definitions=skip_definitions,
            with_percentiles=with_percentiles,
            thresholds=thresholds,
            org=org,
            node_names=_pairs(node_name, "=", "--node-name", "PATH=NAME"),
            missing_nodes=_pairs(missing_node, ":", "--missing-node", "'NAME: REASON'"),
            warnings=warning,
            monitors=monitor,
        )
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    sys.exit(status)


def _pairs(values: tuple[str, ...], sep: str, option: str, form: str) -> dict[str, str]:
    """``KEY<sep>VALUE`` option values as a dict (stripped; a value may hold `sep`)."""
    out: dict[str, str] = {}
    for value in values:
        # a path may hold '=', a node name neither '=' nor ':'
        key, found, rest = value.rpartition(sep) if sep == "=" else value.partition(sep)
        if not found or not key.strip():
            raise click.UsageError(f"{option} takes {form}, not {value!r}")
        out[key.strip()] = rest.strip()
    return out


def _diff_or_trend(
    directories: tuple[str, ...], diff: bool, output_directory: str, report_directory: str | None
) -> None:
    """Hand over to the diff/trend renderers when they are installed."""
    mode = "diff" if diff else "trend"
    if diff and len(directories) != 2:
        raise click.UsageError("--diff takes exactly 2 report directories")
    if not diff and len(directories) < 2:
        raise click.UsageError("--trend takes at least 2 report directories")
    try:
        module = importlib.import_module(f"marteau.report.{mode}")
        build = module.build
    except (ImportError, AttributeError):
        raise MarteauError(f"--{mode} reports are not available yet in this Marteau") from None
    path = build(
        list(directories), output_directory=output_directory, report_directory=report_directory
    )
    click.echo(os.path.abspath(path))
