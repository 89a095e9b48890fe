"""A real Prometheus server (Debian's `prometheus`) on 127.0.0.1, scraping itself every second."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


@contextmanager
def prometheus(directory: Path) -> Iterator[str]:
    """The server's base URL, once it has scraped itself at least twice."""
    if not Path(BINARY).is_file():
        pytest.skip("no prometheus binary (make system-deps installs Debian's)")
    port = free_port()
    (directory / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: self\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    server = subprocess.Popen(
        [BINARY, f"--config.file={directory / 'prometheus.yml'}",
         f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(directory / "prometheus.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                query = url + "/api/v1/query?query=count_over_time(up[1m])"
                with urllib.request.urlopen(query, timeout=2) as answer:
                    result = json.loads(answer.read())["data"]["result"]
                if result and float(result[0]["value"][1]) >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((directory / "prometheus.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
