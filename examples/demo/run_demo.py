"""The README's first command: bench the demo test against the demo target.

Starts the demo shop on a free port of 127.0.0.1, copies the demo test into
a fresh run directory under `demo-output/`, runs `marteau bench` there (this
machine is the only node), builds the report and prints where everything is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MARTEAU = Path(sys.executable).with_name("marteau")


def start_target() -> tuple[subprocess.Popen[str], str]:
    """Start the demo target and return it with the URL it printed."""
    target = subprocess.Popen(
        [sys.executable, str(HERE / "target.py"), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert target.stdout is not None
    line = target.stdout.readline().strip()
    if not line.startswith("Demo target listening on "):
        target.kill()
        sys.exit(f"Error: the demo target did not start: {line!r}")
    return target, line.rsplit(" ", 1)[1]


def main() -> int:
    run_dir = ROOT / "demo-output" / time.strftime("%Y%m%dT%H%M%S")
    shutil.copytree(HERE, run_dir, ignore=shutil.ignore_patterns("__pycache__", "run_demo.py"))
    target, url = start_target()
    try:
        print(f"Demo target: {url}\nRun directory: {run_dir}\n", flush=True)
        bench = subprocess.run(
            [str(MARTEAU), "bench", "loadtest.py", "Demo.test_shop", "--url", url], cwd=run_dir
        )
    finally:
        target.terminate()
        target.wait()
    results = sorted(run_dir.glob("*.xml"))
    if not results:
        print("Error: the bench wrote no results", file=sys.stderr)
        return bench.returncode or 1
    report = subprocess.run(
        [str(MARTEAU), "report", "--html", "-o", str(run_dir / "reports"), *map(str, results)],
        cwd=run_dir,
    )
    print(f"\nResults: {', '.join(map(str, results))}")
    print(f"Report: {run_dir / 'reports'}")
    return bench.returncode or report.returncode


if __name__ == "__main__":
    sys.exit(main())
