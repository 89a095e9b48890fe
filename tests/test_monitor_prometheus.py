"""The Prometheus source against a real Prometheus server (Debian's, tests/prometheus_server.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from marteau.monitor.samples import read_host
from marteau.orchestration.prometheus import pull
from tests.prometheus_server import prometheus


def test_queries_over_a_window_become_a_monitored_host(tmp_path: Path) -> None:
    with prometheus(tmp_path) as url:
        time.sleep(3)  # a few scrapes inside the window
        end = time.time()
        start = end - 4
        warnings = pull(
            url,
            {
                "up": "up",
                "samples": "scrape_samples_scraped",
                "bad": "rate(up[",
                "none": "nothing_here",
            },
            start,
            end,
            1.0,
            tmp_path / "monitors",
        )
    assert len(warnings) == 1 and warnings[0].startswith("prometheus query bad: ")
    assert "HTTP 400" in warnings[0] and "parse error" in warnings[0]
    (directory,) = (tmp_path / "monitors").iterdir()
    port = url.rsplit(":", 1)[1]
    assert directory.name == f"prometheus-127.0.0.1_{port}"
    host = read_host(directory)
    assert host.name == f"127.0.0.1_{port}" and host.description == f"Prometheus {url}"
    assert 3 <= len(host.samples) <= 5  # one a second over 4 s
    assert all(s["up"] == "1.0" and float(s["samples"]) > 10 for s in host.samples)
    times = [float(s["time"]) for s in host.samples]
    assert times == sorted(times) and start - 1 <= times[0] and times[-1] <= end + 1
    assert json.loads((directory / "host.json").read_text())["clock_offset"] == 0.0


def test_an_unreachable_server_is_a_warning(tmp_path: Path) -> None:
    warnings = pull("http://127.0.0.1:1", {"up": "up"}, 0, 10, 1, tmp_path / "monitors")
    assert len(warnings) == 1 and "prometheus query up: http://127.0.0.1:1:" in warnings[0]
    assert not (tmp_path / "monitors").exists()
