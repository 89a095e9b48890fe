"""``index.html``: the bench report as one self-contained, responsive page.

Rendered with Jinja2 (autoescaping on) from the ``summary.json`` data
(`marteau.report.summary.build_summary`), so that the page shows exactly
the figures of the machine-readable summary.  Durations are in
milliseconds with at least 3 significant digits (`stats.milliseconds`):
FunkLoad's ``%.3f`` seconds stay in ``index.rst``, where they print a
0.2 ms response as 0.000.  The charts are PNG files (`marteau.report.charts`,
drawn by worker processes while the rest is prepared), kept beside the
page for ``index.rst`` and inlined in the page as ``data:`` URIs; where
scripts run, they are drawn again as interactive charts from their data
(`marteau.report.interactive`), the PNG being the fallback.

Self-contained and offline by construction: one file, the CSS, the charts,
their data and the chart library inlined, no web font (system font
stacks), and a Content-Security-Policy that allows only the page's own
two scripts (by their sha256) and no fetch but a custom stylesheet
(``-x``), so even a script that slipped through escaping could not run or
call out.  Untrusted text (URLs, descriptions, tracebacks, sample bodies)
is only ever inserted escaped, in the chart data as JSON that cannot
close its ``<script>`` element.

FunkLoad's tables keep FunkLoad's columns; Marteau's additions (P99 and
P99.9, per-node figures, HTTP codes with sample bodies, load generator CPU,
thresholds) are separate tables and sections.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from typing import TYPE_CHECKING, Any

from marteau import __version__
from marteau.errors import MarteauError
from marteau.report.errors import trim_traceback
from marteau.report.stats import APDEX_RATINGS, apdex_label, milliseconds

if TYPE_CHECKING:
    import jinja2

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
CSS_NAME = "marteau.css"
FUNKLOAD_PERCENTILES = (("P10", "p10"), ("MED", "p50"), ("P90", "p90"), ("P95", "p95"))
RATING_LETTERS = {
    "UNACCEPTABLE": "U",
    "POOR": "P",
    "FAIR": "F",
    "Good": "G",
    "Excellent": "E",
}


def environment() -> jinja2.Environment:
    """The Jinja2 environment of Marteau's HTML templates (autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        f3=lambda v: f"{v:.3f}" if v is not None else "",
        f2=lambda v: f"{v:.2f}" if v is not None else "",
        pct=lambda v: f"{v:.2f}%" if v is not None else "",
        num=lambda v: f"{v:,}" if isinstance(v, int) else f"{v:,.1f}",
        rating=lambda score: apdex_label(score),
        rating_class=lambda score: "r-" + RATING_LETTERS[apdex_label(score)],
        ms=milliseconds,
        trim_traceback=trim_traceback,
    )
    return env


def write_page(
    directory: str,
    name: str,
    data: dict[str, Any],
    template: str,
    charts: dict[str, str],
    **context: Any,
) -> str:
    """Write a diff or trend page: its data as `<name>.json` and `index.html` beside it.

    Both pages share the report's stylesheet and footer, so they render the
    same way, and inline their `charts` (name -> PNG file in `directory`)
    as the report does; returns the path of `index.html`.
    """
    with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    page = (
        environment()
        .get_template(template)
        .render(
            data=data,
            charts=inline_charts(directory, charts),
            css=default_css(),
            css_link=None,
            version=__version__,
            **context,
        )
    )
    path = os.path.join(directory, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def default_css() -> str:
    with open(os.path.join(TEMPLATES, CSS_NAME), encoding="utf-8") as f:
        return f.read()


def _pages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Page detail: the representative cycle's requests grouped by page, rows over cycles."""
    cycles = data.get("cycles") or []
    representative = next(
        (c for c in cycles if c["cycle"] == data.get("representative_cycle")), None
    )
    if representative is None:
        return []
    by_key = [{s["key"]: s for s in c["steps"]} for c in cycles]
    pages: list[dict[str, Any]] = []
    for step in representative["steps"]:
        if not pages or pages[-1]["step"] != step["step"]:
            pages.append(
                {
                    "step": step["step"],
                    "title": step["description"] or step["url"],
                    "requests": [],
                }
            )
        rows = [steps[step["key"]] for steps in by_key if step["key"] in steps]
        pages[-1]["requests"].append({"step": step, "rows": rows})
    return pages


def _key_figures(data: dict[str, Any]) -> list[dict[str, str]]:
    """The few numbers a reader looks for first, for the cards at the top."""
    overall = data.get("overall") or {}
    requests = overall.get("requests")
    cycles = data.get("cycles") or []
    best = next((c for c in cycles if c["cycle"] == data.get("best_cycle")), None)
    figures = []
    if requests:
        figures.append({"label": "requests", "value": f"{requests['count']:,}"})
        figures.append(
            {
                "label": "errors",
                "value": f"{requests['error_percent']:.2f}%",
                "class": "bad" if requests["error"] else "good",
            }
        )
        for key in ("p95", "p99"):
            figures.append(
                {
                    "label": f"{key.upper()} request",
                    "value": f"{milliseconds(requests['percentiles'][key])} ms",
                }
            )
    if best and best.get("pages"):
        figures.append(
            {
                "label": f"best SPPS ({best['cvus']} CUs)",
                "value": f"{best['pages']['spps']:.1f}",
            }
        )
    if best and best.get("requests"):
        figures.append(
            {"label": f"RPS ({best['cvus']} CUs)", "value": f"{best['requests']['rps']:.1f}"}
        )
    # the standard Apdex (errors frustrated); FunkLoad's scores stay in its tables
    standard = data.get("apdex")
    if standard and requests:
        score = standard["score"]
        figures.append(
            {
                "label": f"Apdex: {apdex_label(score)} (T={data['apdex_t']:g} s, "
                "errors frustrated)",
                "value": f"{score:.3f}",
                "class": "r-" + RATING_LETTERS[apdex_label(score)],
            }
        )
    return figures


def _skipped(data: dict[str, Any]) -> list[str]:
    """What was left out and why: skipped inputs and reading warnings, once each."""
    out: list[str] = []
    for item in data.get("inputs") or []:
        if not item.get("used", True) and item.get("reason"):
            out.append(item["reason"])
    for warning in data.get("warnings") or []:
        if warning not in out:
            out.append(warning)
    return out


def render_page(
    data: dict[str, Any],
    charts: dict[str, str] | None = None,
    *,
    css_link: str | None = None,
    with_percentiles: bool = True,
    skip_definitions: bool = False,
    monitors: list[dict[str, Any]] | None = None,
    chart_specs: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The HTML text of a bench report from its summary data.

    `charts`: chart name -> image URL (a ``data:`` URI, see `inline_charts`).
    `chart_specs`: chart name -> interactive spec (`interactive.specs`), for
    the charts of `charts` only; without any, the page has no script.
    `monitors`: the monitored hosts (`marteau.report.monitor_charts.monitor_hosts`),
    for the "Monitored hosts" section; without them it is left out.
    """
    charts = charts or {}
    specs = {name: spec for name, spec in (chart_specs or {}).items() if name in charts}
    interactive = None
    if specs:
        from marteau.report.interactive import page_assets, script_json

        interactive = {**page_assets(), "data": script_json(specs)}
    bench = data.get("bench") or {}
    percentiles = FUNKLOAD_PERCENTILES if with_percentiles else ()
    context = {
        "data": data,
        "bench": bench,
        "cycles": data.get("cycles") or [],
        "charts": charts,
        "interactive": interactive,
        "percentiles": percentiles,
        "pages": _pages(data),
        "key_figures": _key_figures(data),
        "skipped": _skipped(data),
        "nodes": data.get("nodes") or [],
        "cpu_nodes": [n for n in data.get("nodes") or [] if n.get("cpu")],
        "best": next(
            (c for c in data.get("cycles") or [] if c["cycle"] == data.get("best_cycle")), None
        ),
        "skip_definitions": skip_definitions,
        "monitors": [
            {"host": h["host"], "description": h["description"], "charts": h["charts"]}
            for h in monitors or []
        ],
        "ratings": [(label, limit) for limit, label in APDEX_RATINGS],
        "letters": RATING_LETTERS,
        "css": default_css(),
        "css_link": css_link,
        "version": __version__,
        "title": "{}.{}".format(bench.get("class", ""), bench.get("method", "")).strip("."),
    }
    return environment().get_template("report.html").render(**context)


def render_html(
    directory: str,
    stats: Any,
    data: dict[str, Any],
    *,
    css: str | None = None,
    results: Any = None,
    with_percentiles: bool = True,
    skip_definitions: bool = False,
    charts: bool = True,
    workers: int | None = None,
) -> str:
    """Write ``index.html`` and the charts into `directory`; returns the page's path.

    `stats` is the `BenchStats` the summary `data` was built from (for the
    charts), `results` the merged `ResultSet` (for the charts over time;
    without it they are left out).  `css`: a custom stylesheet, copied
    under its own basename and linked after Marteau's.  The charts are
    drawn while the monitor charts and the page's context are prepared,
    then inlined; if they cannot be drawn (`MarteauError`), the page is
    still written, without them, as FunkLoad's gnuplot failure left one.
    """
    from marteau.report import chart_pool, interactive, monitor_charts, time_charts
    from marteau.report import charts as charting

    css_link = None
    if css:
        css_link = os.path.basename(css)
        target = os.path.join(directory, css_link)
        if not os.path.exists(target) or not os.path.samefile(css, target):
            shutil.copyfile(css, target)
    rendering = None
    specs: dict[str, dict[str, Any]] = {}
    monitor_records = getattr(results, "monitors", None) or []
    series = None
    if charts and stats is not None:
        # start the chart workers first: they load matplotlib while numpy aggregates
        first, steps = charting.cycle_jobs(stats), charting.step_jobs(stats)
        hosts_seen = len({m.get("host") for m in monitor_records})
        expected = len(first) + len(steps) + 3 + 4 * hosts_seen
        rendering = chart_pool.Rendering(directory, workers=workers, expected=expected)
        series = time_charts.aggregate(getattr(results, "responses", None))
    # the monitor charts share the time charts' origin and cycle bands
    monitors = monitor_charts.monitor_hosts(
        monitor_records, getattr(results, "config", None) or {}, series
    )
    if rendering is not None and stats is not None:
        hosts = [job for host in monitors for job in host["jobs"]]
        jobs = first + time_charts.time_jobs(series, stats) + hosts + steps
        rendering.submit(jobs)
        specs = interactive.specs(jobs)  # while the workers draw
    images: dict[str, str] = {}
    failure = None
    if rendering is not None:
        try:
            images = inline_charts(directory, rendering.wait())
        except MarteauError as exc:
            failure = exc
    page = render_page(
        data,
        images,
        css_link=css_link,
        with_percentiles=with_percentiles,
        skip_definitions=skip_definitions,
        monitors=monitors,
        chart_specs=specs,
    )
    path = os.path.join(directory, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    if failure is not None:
        raise failure
    return path


def inline_charts(directory: str, files: dict[str, str]) -> dict[str, str]:
    """{chart name: ``data:image/png;base64,...``} of the PNG files drawn in `directory`.

    Why inline: the page is one file that can be mailed, attached to a CI
    run or moved without its directory, and loads nothing else.
    """
    out = {}
    for name, filename in files.items():
        with open(os.path.join(directory, filename), "rb") as f:
            out[name] = "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
    return out
