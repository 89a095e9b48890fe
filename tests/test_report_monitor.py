"""The report's "Monitored hosts" section, from FunkLoad <monitor> records."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from marteau.report.command import report_command
from marteau.report.monitor_charts import monitor_hosts
from marteau.results import load
from marteau.results.merge import merge

DATA = Path(__file__).parent / "data" / "report"
MONITOR = DATA / "monitor.xml"
SIMPLE = DATA / "simple.xml"


def build(tmp_path: Path, source: Path) -> tuple[Path, str]:
    target = tmp_path / "report"
    CliRunner().invoke(
        report_command, ["--html", "-r", str(target), str(source)], catch_exceptions=False
    )
    return target, (target / "index.html").read_text(encoding="utf-8")


def test_monitored_hosts_section_and_charts(tmp_path: Path) -> None:
    target, html = build(tmp_path, MONITOR)
    charts = sorted(p.name for p in target.glob("*_Monitor*.png"))
    assert charts == [
        "db_MonitorCPU.png",
        "db_MonitorCUs.png",
        "db_MonitorMemFree.png",
        "web1_MonitorCPU.png",
        "web1_MonitorCUs.png",
        "web1_MonitorMemFree.png",
        "web1_MonitorNetwork.png",
    ]
    assert all((target / name).stat().st_size > 1000 for name in charts)
    assert '<section id="monitors">' in html
    assert '<a href="#monitors">Monitored hosts</a>' in html
    assert "<h3>web1: The front web server</h3>" in html
    assert "<h3>db</h3>" in html
    for name in charts:  # inlined in the page
        png = base64.b64encode((target / name).read_bytes()).decode()
        assert f'id="chart-{name[:-4]}">\n  <img src="data:image/png;base64,{png}"' in html
    # FunkLoad's order: after the slowest requests, before the page detail
    assert html.index('id="slowest"') < html.index('id="monitors"') < html.index('id="page-detail"')


def test_no_monitor_no_section(tmp_path: Path) -> None:
    target, html = build(tmp_path, SIMPLE)
    assert not list(target.glob("*_Monitor*.png"))
    assert 'id="monitors"' not in html
    assert "Monitored hosts" not in html


def test_monitor_series() -> None:
    rs = load(str(MONITOR))
    hosts = {h["host"]: h for h in monitor_hosts(rs.monitors, rs.config)}
    web = {job.name: job.kwargs for job in hosts["web1"]["jobs"]}
    x = web["web1_MonitorCPU"]["x"]
    assert x.tolist() == [0.0, 5.0, 15.0]
    (_, loads), (_, cpu) = web["web1_MonitorCPU"]["panels"]
    assert [label for label, _ in loads] == ["load 1min", "load 5min", "load 15min"]
    # FunkLoad's: busy delta / (busy + idle deltas): 500/(500+300), 500/(500+100)
    assert np.isnan(cpu[0][1][0])
    assert np.allclose(cpu[0][1][1:], [62.5, 500 / 6])
    ((_, mem),) = web["web1_MonitorMemFree"]["panels"]
    # used = total - free - buffers - cached, relative to the first record
    assert dict(mem)["memory"].tolist() == [0.0, 23800.0, 123600.0]
    assert dict(mem)["swap"].tolist() == [0.0, 1000.0, 2000.0]
    ((_, net),) = web["web1_MonitorNetwork"]["panels"]
    assert np.allclose(dict(net)["in"][1:], [10.0, 10.0])  # 50,000 B in 5 s, 100,000 in 10
    assert np.allclose(dict(net)["out"][1:], [4.0, 5.0])
    ((_, users),) = web["web1_MonitorCUs"]["panels"]
    assert dict(users)["CUs"].tolist() == [1.0, 1.0, 2.0]
    assert hosts["db"]["description"] == ""
    assert "db_MonitorNetwork" not in [job.name for job in hosts["db"]["jobs"]]


def test_monitors_survive_the_merge() -> None:
    first, second = load(str(MONITOR)), load(str(MONITOR))
    merged = merge([first, second])
    assert len(merged.results.monitors) == 2 * len(first.monitors)
    hosts = [h["host"] for h in monitor_hosts(merged.results.monitors, merged.results.config)]
    assert hosts == ["web1", "db"]


CONFIG = {
    "method": "test_x",
    "start_at": "1000.0",
    "cycles": "[1, 3]",
    "duration": "10",
    "startup_delay": "1.0",
    "sleep_time": "0",
    "cycle_time": "2.0",
    "web": "The web server",
}


def test_samples_are_keyed_by_the_bench_schedule() -> None:
    from marteau.report.monitoring import cycle_windows, keyed

    # cycle 0: staged at 1000, 1 user 1 s apart, 10 s, 2 s sleep: next at 1013
    assert cycle_windows(CONFIG) == [("test_x:0:1", 1000.0, 1013.0), ("test_x:1:3", 1013.0, 1028.0)]
    samples = [
        {"time": str(t), "host": "web"} for t in (999.9, 1000.0, 1012.9, 1013.0, 1027.9, 1028)
    ]
    assert [(s["time"], s["key"]) for s in keyed(samples, CONFIG)] == [
        ("1000.0", "test_x:0:1"),
        ("1012.9", "test_x:0:1"),
        ("1013.0", "test_x:1:3"),
        ("1027.9", "test_x:1:3"),
    ]
    assert keyed(samples, {"cycles": "[1]"}) == []  # no start instant: no cycle to give


def test_cycle_averages_for_summary_json() -> None:
    from marteau.report.monitoring import cycle_averages

    def sample(t: float, busy: int, idle: int, rx: int, load: str, key: str, **more: str) -> dict:
        return {
            "time": str(t), "host": "web", "key": key, "CPUTotalJiffies": str(busy),
            "IDLTotalJiffies": str(idle), "loadAvg1min": load, "memTotal": "1000",
            "memFree": "400", "buffers": "50", "cached": "50", "receiveBytes": str(rx),
            "transmitBytes": "0", **more,
        }  # fmt: skip

    records = [
        sample(1000, 100, 100, 0, "1.0", "test_x:0:1", http_rps="10"),
        sample(1002, 150, 250, 4000, "2.0", "test_x:0:1", http_rps="20"),
        sample(1014, 200, 300, 4000, "3.0", "test_x:1:3"),
        sample(1016, 380, 320, 10000, "5.0", "test_x:1:3"),
    ]
    averages = cycle_averages(records, CONFIG)
    assert averages == {
        "web": {
            "description": "The web server",
            "cycles": [
                {
                    "cycle": 0, "cvus": 1, "samples": 2, "cpu_percent": 25.0, "load_1min": 1.5,
                    "mem_used_kB": 500.0, "net_in_kB_per_s": 2.0, "net_out_kB_per_s": 0.0,
                    "http_rps": 15.0,
                },
                {
                    "cycle": 1, "cvus": 3, "samples": 2, "cpu_percent": 90.0, "load_1min": 4.0,
                    "mem_used_kB": 500.0, "net_in_kB_per_s": 3.0, "net_out_kB_per_s": 0.0,
                },
            ],
        }
    }  # fmt: skip


def test_monitor_charts_share_the_time_charts_origin_and_cycle_bands() -> None:
    from marteau.report.time_charts import aggregate

    rs = load(str(MONITOR))
    series = aggregate(rs.responses)
    hosts = {h["host"]: h for h in monitor_hosts(rs.monitors, rs.config, series)}
    cpu = hosts["web1"]["jobs"][0].kwargs
    assert cpu["aligned"] is True
    first = float(rs.monitors[0]["time"])
    assert cpu["x"][0] == first - series.start
    assert [users for _, _, users in cpu["spans"]] == series.cvus
