"""A project's runs side by side: which jobs form a project, each run's change from
the project's previous successful run, and the diff and trend reports of the report
layer built for them.

A project is its owner's: the `name` of its `.marteau.yml`, or, without one, where
it comes from (the git URL, the uploaded archive's top folder, the local path). Two
users running one repository keep two trends; renaming a project starts a new one.

When a job ends the worker keeps its key figures on its row (`run_figures`) and,
in the same transaction, its change from the previous successful run with figures,
each figure flagged when it moved past the project's tolerance (`compare:
{tolerance: N%}` in `.marteau.yml`, 10% by default; Apdex in points). Once the
job's nodes are free it writes the diff report against that run and the trend
report over the project's last `TREND_RUNS` runs into the job's report folder, so
that pages and the API serve files and read rows, never a report."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Integer, bindparam, or_, select, update
from sqlalchemy.orm import Session

from marteau.report.diff import verdict
from marteau.service import quotas, run_figures
from marteau.service.db import Database
from marteau.service.job_fields import redacted
from marteau.service.models import ARCHIVE, GIT, SUCCEEDED, Job
from marteau.service.run_figures import KeyFigures
from marteau.service.settings import Settings

DEFAULT_TOLERANCE = 10.0  # percent (Apdex: points) when `.marteau.yml` sets none
TREND_RUNS = 20  # runs of a project in a trend, this one included
DIFF_DIR, TREND_DIR = "diff", "trend"  # in the job's report folder
# figure -> the key of `diff.verdict` (which way is better)
FIGURES = {"peak_rps": "rate", "p95": "p95", "error_percent": "error_percent", "apdex": "apdex"}
LABELS = {"peak_rps": "peak req/s", "p95": "p95", "error_percent": "errors", "apdex": "Apdex"}
HEADLINE_LABELS = {**LABELS, "peak_rps": "peak"}  # "peak 1,234 req/s"


def project_key(owner_id: int | None, name: str | None, job: Job) -> str:
    """The project of a job, as a fixed-length key: a hash of its owner and its name
    or, without one, its source (redacted: a key never holds a secret)."""
    if name:
        identity = f"name:{name}"
    elif job.source_kind == GIT:
        identity = f"git:{redacted(job.source_url).rstrip('/').removesuffix('.git')}"
    elif job.source_kind == ARCHIVE:
        top = PurePosixPath(job.source_url).name
        identity = f"archive:{top if top != 'source' else job.archive_name or ''}"
    else:
        identity = f"path:{job.source_url}"
    return hashlib.sha256(f"{owner_id}\n{identity}".encode()).hexdigest()[:32]


def figures_of(job: Any) -> KeyFigures:
    """The key figures a job row (or listed job) holds."""
    return KeyFigures(job.peak_rps, job.p95, job.error_percent, job.apdex)


def key_figures_json(job: Any) -> dict[str, float | None] | None:
    """A job's key figures in the API, None before it ends with a report."""
    if job.peak_rps is job.p95 is job.error_percent is job.apdex is None:
        return None
    return {
        "peak_rps": job.peak_rps,
        "p95": job.p95,
        "error_percent": job.error_percent,
        "apdex": job.apdex,
    }


def comparison_json(job: Job, base: str) -> dict[str, Any]:
    """A job's whole comparison and its reports' URLs (`base`: the job's URL/): not in
    a page of jobs, which reads only `compared_to` and `flagged` of it."""
    comparison = job.comparison or {}
    return {
        "comparison": job.comparison,
        "diff_url": base + comparison["diff"] if "diff" in comparison else None,
        "trend_url": base + comparison["trend"] if "trend" in comparison else None,
    }


def flagged_text(changes: dict[str, dict[str, Any]]) -> str | None:
    """The changes past the tolerance as the job lists read them: `p95:+35%:worse;...`."""
    parts = [
        f"{name}:{change_text(name, change)}:{change['class']}"
        for name, change in changes.items()
        if flagged(change)
    ]
    return ";".join(parts) or None


def flagged_changes(text: str | None) -> dict[str, dict[str, str]]:
    """`flagged_text` read back: {figure: {change, class}}."""
    if not text:
        return {}
    out = {}
    for part in text.split(";"):
        name, change, kind = part.split(":")
        out[name] = {"change": change, "class": kind}
    return out


def compare(previous: KeyFigures, current: KeyFigures, tolerance: float) -> dict[str, Any]:
    """Each figure's change (`diff.verdict` with the tolerance as its neutral band): its
    `percent` (None from zero), `delta` and `class`: better or worse past the tolerance,
    else same. Kept small: a page of jobs decodes it for each row."""
    changes = {}
    for name, key in FIGURES.items():
        change = verdict(key, getattr(previous, name), getattr(current, name), tolerance)
        if change["class"] != "na":
            changes[name] = {k: change[k] for k in ("percent", "delta", "class")}
    return changes


def flagged(change: dict[str, Any] | None) -> bool:
    """Whether a change moved past the project's tolerance."""
    return bool(change and change["class"] in ("better", "worse"))


PREVIOUS = (
    select(Job.id, Job.peak_rps, Job.p95, Job.error_percent, Job.apdex)
    .where(
        Job.project_key == bindparam("key"),
        Job.id < bindparam("before"),
        Job.state == SUCCEEDED,
        or_(*(getattr(Job, name).is_not(None) for name in FIGURES)),
    )
    .order_by(Job.id.desc())
    .limit(1)
)


def record(session: Session, job_id: int, figures: KeyFigures) -> None:
    """Keep the ended job's figures and its change from the project's previous
    successful run, in the transaction that ends it."""
    job = session.get(Job, job_id)
    if job is None or not figures.any():
        return
    job.peak_rps, job.p95 = figures.peak_rps, figures.p95
    job.error_percent, job.apdex = figures.error_percent, figures.apdex
    if job.project_key is None:
        return
    row = session.execute(PREVIOUS, {"key": job.project_key, "before": job_id}).first()
    if row is None:
        return
    tolerance = DEFAULT_TOLERANCE if job.tolerance is None else job.tolerance
    changes = compare(KeyFigures(*row[1:]), figures, tolerance)
    job.compared_to, job.flagged = row.id, flagged_text(changes)
    job.comparison = {"job": row.id, "tolerance": tolerance, "changes": changes}


RUNS = (
    select(Job.id, Job.state, Job.ended, Job.peak_rps, Job.p95, Job.error_percent, Job.apdex)
    .where(
        Job.project_key == bindparam("key"),
        Job.id <= bindparam("up_to"),
        or_(*(getattr(Job, name).is_not(None) for name in FIGURES)),
    )
    .order_by(Job.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


def project_runs(
    session: Session, key: str | None, up_to: int, limit: int = TREND_RUNS
) -> list[dict[str, Any]]:
    """The project's runs with figures up to job `up_to`, oldest first (at most
    `limit`, the newest ones): one statement, the project's index."""
    if key is None:
        return []
    rows = session.execute(RUNS, {"key": key, "up_to": up_to, "limit": limit}).all()
    return [
        {
            "id": row.id,
            "state": row.state,
            "ended": row.ended,
            "key_figures": {name: getattr(row, name) for name in FIGURES},
        }
        for row in reversed(rows)
    ]


def figure_text(name: str, value: float | None) -> str:
    """One key figure as people read it: requests/s, p95 in ms, errors in %, Apdex."""
    if value is None:
        return ""
    if name == "peak_rps":
        return f"{value:,.0f} req/s" if value >= 100 else f"{value:.1f} req/s"
    if name == "p95":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if name == "error_percent":
        return f"{value:.2f}%"
    return f"{value:.2f}"


def change_text(name: str, change: dict[str, Any]) -> str:
    """How a figure moved: `+35%`, Apdex in points (`-0.04`), errors from none in
    points (`+1.20 pts`); empty when one side has no value."""
    if change.get("delta") is None:
        return ""
    if name == "apdex":
        return f"{change['delta']:+.2f}"
    if change.get("percent") is None:
        return f"{change['delta']:+.2f} pts"
    return f"{change['percent']:+.0f}%"


def headline(figures: KeyFigures) -> str:
    """`peak 1,234 req/s, p95 312 ms, errors 0.10%, Apdex 0.94` (the figures it has)."""
    parts = []
    for name in FIGURES:
        text = figure_text(name, getattr(figures, name))
        if text:
            parts.append(f"{HEADLINE_LABELS[name]} {text}")
    return ", ".join(parts)


def changes_line(comparison: dict[str, Any] | None) -> str:
    """`vs job #41 (tolerance 10%): peak req/s -2%, p95 +35% (worse), ...`: each
    figure's change, the ones past the tolerance marked."""
    if not comparison or comparison.get("job") is None:
        return ""
    parts = []
    for name, change in (comparison.get("changes") or {}).items():
        text = change_text(name, change)
        if text:
            mark = f" ({change['class']})" if flagged(change) else ""
            parts.append(f"{LABELS.get(name, name)} {text}{mark}")
    tolerance = f"{comparison.get('tolerance', DEFAULT_TOLERANCE):g}%"
    return f"vs job #{comparison['job']} (tolerance {tolerance}): " + ", ".join(parts)


def short_change(figures: KeyFigures, comparison: dict[str, Any] | None) -> str:
    """The mail subject's few words: `p95 312 ms, +35% vs job #41`."""
    if figures.p95 is None:
        return ""
    text = f"p95 {figure_text('p95', figures.p95)}"
    change = ((comparison or {}).get("changes") or {}).get("p95")
    moved = change_text("p95", change) if change else ""
    return text + (f", {moved} vs job #{comparison['job']}" if moved and comparison else "")


def keep_rows(settings: Settings, job_id: int, log: Callable[[str], None]) -> KeyFigures:
    """Read the ended job's report (bounded, checked) and keep its compared rows in its
    folder; its key figures (all None when the report gives none)."""
    job_dir = settings.job_dir(job_id)
    try:
        figures, rows = run_figures.read_report_figures(job_dir / "report")
    except run_figures.Unreadable as exc:
        log(f"no key figures: {exc}")
        return KeyFigures(None, None, None, None)
    if rows is not None:
        run_figures.write_rows(job_dir, rows)
    return figures


def build_reports(
    db: Database, settings: Settings, job_id: int, log: Callable[[str], None]
) -> None:
    """Write the ended job's diff and trend reports into its report folder, note them
    on its comparison and count them in its disk use. A report that cannot be built
    is logged; the job's own report and result stay as they are."""
    from marteau.report.diff import write_diff
    from marteau.report.trend import write_trend

    with db.read() as session:
        job = session.get(Job, job_id)
        if job is None or not figures_of(job).any():
            return
        comparison = dict(job.comparison or {})
        runs = project_runs(session, job.project_key, job_id)
    report_dir = settings.job_dir(job_id) / "report"
    reports = {}
    for run in runs:
        try:
            reports[run["id"]] = run_figures.read_rows(
                settings.job_dir(run["id"]), f"job {run['id']}"
            )
        except run_figures.Unreadable:
            continue  # a run whose rows were not kept (or its folder deleted)
    built = {}
    reference = comparison.get("job")
    if job_id in reports and reference in reports:
        built[DIFF_DIR] = _write(
            report_dir / DIFF_DIR,
            lambda d: write_diff(reports[reference], reports[job_id], d),
            log,
        )
    trend = [reports[run["id"]] for run in runs if run["id"] in reports]
    if len(trend) >= 2 and job_id in reports:
        built[TREND_DIR] = _write(report_dir / TREND_DIR, lambda d: write_trend(trend, d), log)
        comparison["runs"] = len(trend)
    comparison.update({name: f"report/{name}/" for name, ok in built.items() if ok})
    if not any(built.values()):
        return
    with db.write() as session:
        session.execute(update(Job).where(Job.id == job_id).values(comparison=comparison))
        quotas.record_disk(session, settings, job_id)


def _write(directory: Path, write: Callable[[str], str], log: Callable[[str], None]) -> bool:
    """Write one report into `directory` (anything there before removed first)."""
    if directory.is_symlink() or directory.is_file():
        directory.unlink()
    elif directory.exists():
        shutil.rmtree(directory)
    try:
        write(str(directory))
    except Exception as exc:  # noqa: BLE001 - the job's own report stays; say why
        log(f"the {directory.name} report was not built: {exc!r:.300}")
        shutil.rmtree(directory, ignore_errors=True)
        return False
    return True
