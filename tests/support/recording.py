"""`marteau record` started as a user starts it, and the mark of the tests that need
its recording proxy (mitmdump, installed beside the virtualenv's own)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.commands import BIN, MARTEAU

ADDRESS = re.compile(r"http://127\.0\.0\.1:\d+")


needs_mitmdump = pytest.mark.skipif(
    not os.access(BIN / "mitmdump", os.X_OK),
    reason="mitmdump is not installed (make .venv/.installed)",
)


def start_recording(workdir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``marteau record -p 0 ARGS`` in ``workdir``, and the proxy address it prints."""
    process = subprocess.Popen(
        [MARTEAU, "record", "-p", "0", "--confdir", str(workdir / "mitmproxy"), *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the "Recording through ..." line, or an error
    match = ADDRESS.search(first)
    if not match:
        process.kill()
        pytest.fail(f"no proxy address in {first!r}: {process.communicate()}")
    return process, match.group(0)
