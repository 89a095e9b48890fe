"""A job's `marteau run`: its options (`run_arguments`), its own copy of
`.marteau.yml` (`rewrite_config`), and what its exit status and console say at its
end (`outcome`). The worker runs it (`worker`)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from marteau import exits
from marteau.engine.fuse import FUSE_EXIT
from marteau.errors import MarteauError
from marteau.service.models import CANCELLED, FAILED, SUCCEEDED, Job
from marteau.service.scheduler import Claim
from marteau.service.settings import Settings

ERROR_LINE = re.compile(r"^Error: (.+)$")
# `marteau run` prints the line of the node whose safety fuse stopped the job last
FUSE_LINE = re.compile(r"^(safety fuse: .+)$")
# ... and its totals: what a job that ended with errors or lost load did
TOTALS_LINE = re.compile(r"^Totals: (.+)$")


def last_error(console: Path) -> str | None:
    """The last `Error: ...` line `marteau run` printed."""
    return _last_match(console, ERROR_LINE)


def last_fuse(console: Path) -> str | None:
    """The `safety fuse: ...` line `marteau run` printed when a node's fuse stopped the job."""
    return _last_match(console, FUSE_LINE)


def _last_match(console: Path, pattern: re.Pattern[str]) -> str | None:
    """Group 1 of the last line of the console's tail that matches ``pattern``."""
    try:
        with open(console, "rb") as f:
            f.seek(max(0, os.path.getsize(console) - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        match = pattern.match(line.strip())
        if match:
            return match.group(1)
    return None


def outcome(code: int, stopped: str | None, console: Path) -> tuple[str, str]:
    if stopped == "cancel":
        return CANCELLED, "cancelled"
    if stopped == "stopping":
        return FAILED, "interrupted: the worker was stopped"
    if stopped == "lost":
        return FAILED, "the worker lost the job's lease"
    if code == exits.OK:
        return SUCCEEDED, "done"
    error = last_error(console)
    if code == exits.BAD_INPUT:
        return FAILED, f"bad input: {error}" if error else "bad input (exit 2)"
    if code < 0:
        return FAILED, f"killed by signal {signal.Signals(-code).name}"
    if code == FUSE_EXIT:
        return FAILED, last_fuse(console) or f"safety fuse: the bench was stopped (exit {code})"
    if code in (exits.ERRORS, exits.INCOMPLETE):  # the run went to its end: say what it did
        totals = _last_match(console, TOTALS_LINE)
        return FAILED, exits.meaning(code) + (f": {totals}" if totals else "")
    if code > exits.SIGNAL_BASE:
        return FAILED, f"stopped by signal {code - exits.SIGNAL_BASE} (exit {code})"
    return FAILED, error or f"marteau run failed (exit {code}: {exits.meaning(code)})"


def run_arguments(
    job: Job,
    claim: Claim,
    job_dir: Path,
    src: Path,
    settings: Settings,
    max_users: int | None = None,
) -> list[str]:
    """`marteau run` options for this job and its leased nodes; `max_users` is the
    owner's users-per-node quota, which each node's bench enforces."""
    o = job.overrides or {}
    args = ["-i", str(job_dir / "inventory.ini"), "--pool", claim.pool]
    args += ["--nodes", str(len(claim.nodes)), "--runs-dir", str(job_dir / "runs")]
    args += [
        "-o",
        str(job_dir / "report"),
        "--lock-timeout",
        f"{settings.lock_timeout:g}",
        "--plain",
    ]
    if o.get("cycles"):
        args += ["-c", str(o["cycles"])]
    if o.get("duration"):
        args += ["-D", str(int(o["duration"]))]
    if o.get("label"):
        args += ["-l", str(o["label"])]
    if o.get("url"):
        args += ["-u", str(o["url"])]
    if o.get("split"):
        args.append("--split")
    if settings.hosts_enforced and job.allowed_hosts is None:
        raise MarteauError("the job was prepared before hosts were enforced: replay it")
    for host in job.allowed_hosts or []:
        args += ["--allow-host", str(host)]
    if settings.hosts_enforced and job.allowed_hosts:  # a shared server's other sites
        args.append("--strict-host")
    if max_users:
        args += ["--max-users", str(max_users)]
    if o.get("thresholds"):
        path = (src / str(o["thresholds"])).resolve()
        try:
            path.relative_to(src.resolve())
        except ValueError:
            raise MarteauError(f"thresholds {o['thresholds']!r}: outside the project") from None
        if not path.is_file():
            raise MarteauError(f"thresholds {o['thresholds']!r}: no such file in the project")
        args += ["--thresholds", str(path)]
    if settings.fuse_enabled:
        args += ["--fuse-error-rate", f"{settings.fuse_error_rate:g}"]
        args += ["--fuse-median", f"{settings.fuse_median:g}"]
        args += ["--fuse-window", f"{settings.fuse_window:g}"]
    return args


def rewrite_config(path: Path, overrides: dict) -> None:
    """Set `script`/`test` of the job's own copy of `.marteau.yml`."""
    import yaml

    from marteau.orchestration.project import parse_config

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MarteauError(f"{path}: cannot read: {exc}") from None
    values = {key: value for key, (value, _line) in parse_config(text, path).items()}
    for key in ("script", "test"):
        if overrides.get(key):
            values[key] = str(overrides[key])
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
