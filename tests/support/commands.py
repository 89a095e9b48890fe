"""Marteau's commands run as a user runs them: the virtualenv's executables in a
subprocess, in the test's directory, with the repository's import shims on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MARTEAU = str(BIN / "marteau")
MARTEAU_BENCH = [MARTEAU, "bench"]


def bench_env() -> dict[str, str]:
    # The repository root carries the `funkload` import shim the test files use.
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


def bench(
    workdir: Path, *args: str, command: list[str] | None = None, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    """`marteau bench ARGS` (or `command ARGS`) in ``workdir``."""
    return subprocess.run(
        [*(command or MARTEAU_BENCH), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=bench_env(),
    )


def marteau_test(
    cwd: Path, *args: str, program: str = MARTEAU, env_changes: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess:
    """`marteau test ARGS` (or `program ARGS`) in ``cwd``; ``env_changes`` sets variables
    (``None`` unsets one)."""
    # The repo root on the path: an editable install made before `funkload/` and
    # `webunit/` had an __init__.py maps only `marteau`, not the import shims.
    env = dict(os.environ)
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [program, *(["test"] if program == MARTEAU else []), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
