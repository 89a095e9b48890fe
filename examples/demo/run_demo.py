"""The README's first command: `marteau run` of the demo test against the demo target.

Starts the demo shop on a free port of 127.0.0.1, then runs the demo
project with `marteau run` on the embedded default (this machine is the only
node); the run directory and the report path are printed at the end.
"""

from __future__ import annotations

import subprocess
import sys
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
    target, url = start_target()
    try:
        print(f"Demo target: {url}", flush=True)
        run = subprocess.run(
            [str(MARTEAU), "run", str(HERE), "--url", url, "--runs-dir", str(ROOT / "demo-output")]
        )
    finally:
        target.terminate()
        target.wait()
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
