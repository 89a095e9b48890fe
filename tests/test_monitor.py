"""The monitoring agent on this machine: psutil samples, the record mode, FunkLoad's
monitor server (`fl-monitor-ctl`) and a bench whose conf names it in ``[monitor]``.

Every loop here is bounded by the agent's own bounds (a max duration or a
count) and by a subprocess timeout. Nothing asserts timing: counts, keys,
the order of samples, and that counters only grow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from marteau.errors import MarteauError
from marteau.funkload import rpc_daemon
from marteau.funkload.rpc_daemon import Daemon, control
from marteau.monitor.sampler import Sampler
from marteau.results import load
from tests.servers import LocalServer, free_port, ok

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH_DATA = REPO / "tests" / "data" / "bench"
COUNTERS = ("CPUTotalJiffies", "IDLTotalJiffies", "receiveBytes", "transmitBytes")


def run(*args: str, cwd: Path, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def read_samples(path: Path) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines[0], lines[1:-1], lines[-1]


def loopback_bytes() -> None:
    """Send 64 kB over the loopback, so that its counters move."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"x" * 65536)
                got = 0
                while got < 65536:
                    got += len(peer.recv(65536))


def test_a_sample_of_this_machine() -> None:
    sampler = Sampler(interface="lo")
    first = sampler.sample("here")
    loopback_bytes()
    second = sampler.sample("here")
    assert first["host"] == "here" and float(second["time"]) >= float(first["time"])
    assert int(first["memTotal"]) > int(first["memFree"]) > 0
    assert int(first["cpus"]) == os.cpu_count()
    assert float(first["loadAvg1min"]) >= 0
    for name in COUNTERS:
        assert int(second[name]) >= int(first[name]), name
    # the loopback carried the bytes sent above: received and sent alike
    assert int(second["receiveBytes"]) > int(first["receiveBytes"])


def test_a_missing_interface_or_plugin_is_refused(tmp_path: Path) -> None:
    out = run(
        str(BIN / "marteau"), "monitor", "--record", "s.jsonl", "--interface", "nope0", cwd=tmp_path
    )
    assert out.returncode == 2
    assert "network interface 'nope0' not found" in out.stderr and "lo" in out.stderr
    out = run(
        str(BIN / "marteau"),
        "monitor",
        "--record",
        "s.jsonl",
        "--plugins",
        "MonitorGPU",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "unknown monitor plugin MonitorGPU" in out.stderr
    out = run(
        str(BIN / "marteau"), "monitor", "--record", "s.jsonl", "--interval", "0.01", cwd=tmp_path
    )
    assert out.returncode == 2 and "interval: expected 0.1 to 3600 seconds" in out.stderr


def test_record_stops_at_its_max_duration(tmp_path: Path) -> None:
    out = run(
        str(BIN / "marteau"), "monitor", "--record", "s.jsonl", "--interval", "0.2",
        "--max-duration", "1.5", "--interface", "lo", "--host", "target", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    header, samples, end = read_samples(tmp_path / "s.jsonl")
    assert header["marteau_monitor"] == 1 and header["host"] == "target"
    assert header["interval"] == 0.2 and header["interface"] == "lo"
    assert end["stopped"] == "max duration 1.5s reached"
    assert 2 <= len(samples) <= 8  # a grid of 0.2 s within 1.5 s; fewer on a busy machine
    times = [float(s["time"]) for s in samples]
    assert times == sorted(times) and all(s["host"] == "target" for s in samples)


def test_record_stops_on_sigterm_and_keeps_its_samples(tmp_path: Path) -> None:
    agent = subprocess.Popen(
        [str(BIN / "marteau"), "monitor", "--record", "s.jsonl", "--interval", "0.2",
         "--max-duration", "60", "--pid-file", "agent.pid"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = (
                (tmp_path / "s.jsonl").read_text().splitlines()
                if (tmp_path / "s.jsonl").exists()
                else []
            )
            if len(lines) >= 3:
                break
            time.sleep(0.1)
        assert int((tmp_path / "agent.pid").read_text()) == agent.pid
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=30)
    finally:
        agent.kill() if agent.poll() is None else None
    assert agent.returncode == 0, err
    _, samples, end = read_samples(tmp_path / "s.jsonl")
    assert end["stopped"] == "stopped" and len(samples) >= 2
    assert not (tmp_path / "agent.pid").exists()


def write_conf(directory: Path, port: int, **extra: str) -> Path:
    lines = ["[server]", "host = 127.0.0.1", f"port = {port}", "interval = .2", "interface = lo"]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    lines += ["[client]", "host = 127.0.0.1", f"port = {port}"]
    path = directory / "monitor.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fl_monitor_ctl_start_status_test_stop(tmp_path: Path) -> None:
    port = free_port()
    write_conf(tmp_path, port)
    url = f"http://127.0.0.1:{port}/"
    ctl = str(BIN / "fl-monitor-ctl")
    try:
        started = run(ctl, "monitor.conf", "start", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        pid = int((tmp_path / "monitor.pid").read_text())
        assert started.stdout == f"Server {url} started (monitor running pid = {pid}).\n"
        status = run(ctl, "monitor.conf", "status", cwd=tmp_path)
        assert status.stdout == f"{url} monitor running pid = {pid}.\n"
        tested = run(ctl, "monitor.conf", "test", cwd=tmp_path)
        lines = tested.stdout.splitlines()
        assert tested.returncode == 0 and len(lines) >= 3  # 2 s at 0.2 s, fewer when busy
        for line in lines:
            assert line.startswith('<monitor key="internal_test_monitor" time="')
            assert 'host="127.0.0.1"' in line and "CPUTotalJiffies=" in line
            assert line.endswith("  />")
    finally:
        stopped = run(ctl, "monitor.conf", "stop", cwd=tmp_path)
    assert stopped.stdout == f"Server {url} is stopped.\n"
    assert not (tmp_path / "monitor.pid").exists()
    assert (
        run(ctl, "monitor.conf", "status", cwd=tmp_path).stdout
        == f"No server reachable at {url}.\n"
    )
    assert "XML/RPC server pid=" in (tmp_path / "monitor.log").read_text()


def test_the_server_stops_itself_at_its_max_duration(tmp_path: Path) -> None:
    port = free_port()
    write_conf(tmp_path, port, max_duration="2")
    server = run(
        str(BIN / "fl-monitor-ctl"), "monitor.conf", "startd", "-q", cwd=tmp_path, timeout=60
    )
    assert server.returncode == 0
    assert (
        "monitor server: max duration 2s reached, stopping."
        in (tmp_path / "monitor.log").read_text()
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"interval": "fast"}, "[server] interval: expected a number, got 'fast'"),
        ({"max_duration": "0"}, "[server]: max_duration: expected 1 to 604800 seconds"),
        ({"port": "99999"}, "[server] port: expected 1-65535, got 99999"),
    ],
)
def test_a_bad_conf_names_the_key(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    path = write_conf(tmp_path, 1)
    text = path.read_text()
    for key, value in extra.items():
        if f"{key} = " in text:
            text = "\n".join(
                f"{key} = {value}"
                if line.startswith(f"{key} = ") and "[client]" not in line
                else line
                for line in text.splitlines()
            )
        else:
            text = text.replace("interface = lo", f"interface = lo\n{key} = {value}")
    path.write_text(text)
    out = run(str(BIN / "fl-monitor-ctl"), "monitor.conf", "status", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "monitor.conf" in out.stderr


def test_plugins_section_selects_what_is_sampled(tmp_path: Path) -> None:
    from marteau.monitor.conf import read_conf

    path = write_conf(tmp_path, 1)
    path.write_text(path.read_text() + "[plugins]\nmonitors_enabled = MonitorCPU MonitorCUs\n")
    conf = read_conf(str(path))
    assert conf.plugins == ["MonitorCPU", "MonitorCUs"]
    sample = Sampler(conf.plugins, conf.interface).sample("h")
    assert "loadAvg1min" in sample and "memFree" not in sample and "receiveBytes" not in sample
    path.write_text(path.read_text().replace("monitors_enabled", "monitors_disabled"))
    assert read_conf(str(path)).plugins == ["MonitorMemFree", "MonitorNetwork", "MonitorDisk"]


# -- a bench whose conf names a monitor server ----------------------------------------


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    for item in BENCH_DATA.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    return tmp_path


def test_a_bench_records_its_monitor_servers_per_cycle(bench_dir: Path) -> None:
    from marteau.monitor.conf import read_conf
    from marteau.monitor.server import serve_in_thread

    port = free_port()
    server = serve_in_thread(read_conf(str(write_conf(bench_dir, port))))
    conf = bench_dir / "Bench.conf"
    conf.write_text(
        conf.read_text()
        + f"\n[monitor]\nhosts = target gone\n[target]\nhost = 127.0.0.1\nport = {port}\n"
        + "description = The target\n[gone]\nhost = 127.0.0.1\nport = 1\n"
    )
    try:
        with LocalServer(routes={"/ok": lambda request: ok("OK")}) as site:
            out = run(
                str(BIN / "marteau"), "bench", "benchtests.py", "Bench.test_get", "-u", site.url,
                "-c", "1:2", "--workers", "1", cwd=bench_dir,
            )  # fmt: skip
    finally:
        server.stopServer()
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"* Monitored hosts: target (http://127.0.0.1:{port}/), gone" in out.stdout
    assert "* Monitor gone: start failed" in out.stdout and "dropped." in out.stdout
    results = load(str(bench_dir / "bench.mrt"))
    assert results.config["target"] == "The target"
    keys = [m["key"] for m in results.monitors]
    assert keys and set(keys) == {"test_get:0:1", "test_get:1:2"}
    assert keys == sorted(keys)  # cycle 0's samples, then cycle 1's
    assert all(m["host"] == "127.0.0.1" and "memFree" in m for m in results.monitors)
    # the FunkLoad XML export carries them too, and the report draws them
    xml = (bench_dir / "bench.xml").read_text()
    assert xml.count('<monitor key="test_get:') == len(keys)
    report = run(
        str(BIN / "marteau"), "report", "--html", "-r", "report", "bench.mrt", cwd=bench_dir
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert (bench_dir / "report" / "127.0.0.1_MonitorCPU.png").stat().st_size > 1000
    assert (bench_dir / "report" / "127.0.0.1_MonitorCUs.png").exists()


def test_no_monitor_leaves_the_servers_alone(bench_dir: Path) -> None:
    conf = bench_dir / "Bench.conf"
    conf.write_text(
        conf.read_text() + "\n[monitor]\nhosts = gone\n[gone]\nhost = 127.0.0.1\nport = 1\n"
    )
    with LocalServer(routes={"/ok": lambda request: ok("OK")}) as site:
        out = run(
            str(BIN / "marteau"), "bench", "benchtests.py", "Bench.test_get", "-u", site.url,
            "-c", "1", "--workers", "1", "--no-monitor", cwd=bench_dir,
        )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Monitor" not in out.stdout
    assert load(str(bench_dir / "bench.mrt")).monitors == []


def test_recorded_samples_join_the_report_per_cycle(bench_dir: Path) -> None:
    """The agent records while a bench runs; `marteau report --monitor` keys its samples
    by the bench's cycles, charts them on the time charts' origin and averages them."""
    host_dir = bench_dir / "monitors" / "target"
    host_dir.mkdir(parents=True)
    agent = subprocess.Popen(
        [str(BIN / "marteau"), "monitor", "--record", str(host_dir / "samples.jsonl"),
         "--interval", "0.2", "--max-duration", "120", "--interface", "lo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with LocalServer(routes={"/ok": lambda request: ok("OK")}) as site:
            out = run(
                str(BIN / "marteau"), "bench", "benchtests.py", "Bench.test_get", "-u", site.url,
                "-c", "1:2", "--workers", "1", cwd=bench_dir,
            )  # fmt: skip
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    (host_dir / "host.json").write_text(
        json.dumps({"name": "target", "description": "The target", "clock_offset": 0.0})
    )
    report = run(
        str(BIN / "marteau"), "report", "--html", "-r", "report", "--monitor", str(host_dir),
        "bench.mrt", cwd=bench_dir,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    summary = json.loads((bench_dir / "report" / "summary.json").read_text())
    target = summary["monitors"]["target"]
    assert target["description"] == "The target"
    assert [(c["cycle"], c["cvus"]) for c in target["cycles"]] == [(0, 1), (1, 2)]
    for cycle in target["cycles"]:
        assert cycle["samples"] >= 2
        assert 0 <= cycle["cpu_percent"] <= 100
        assert cycle["mem_used_kB"] > 0 and cycle["net_in_kB_per_s"] >= 0
    charts = {p.name for p in (bench_dir / "report").glob("target_Monitor*.png")}
    assert {"target_MonitorCPU.png", "target_MonitorNetwork.png", "target_MonitorCUs.png"} <= charts
    html = (bench_dir / "report" / "index.html").read_text()
    assert "<h3>target: The target</h3>" in html


def _rpc_server(stop_answers: bool, stops: bool) -> Any:
    """A real XML-RPC server in a thread whose stopServer may drop its answer, and may
    never stop (a busy or stuck server, as `*-ctl stop` can meet it)."""
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.register_function(lambda: "monitor running pid = 1", "getStatus")

    def stop_server() -> int:
        if stops:  # then closes its socket, as the real server's process exits
            threading.Thread(target=lambda: (server.shutdown(), server.server_close())).start()
        if not stop_answers:
            raise ConnectionResetError("dropped")  # the handler closes without an answer
        return 1

    server.register_function(stop_server, "stopServer")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("stop_answers", [True, False])
def test_ctl_stop_judges_by_whether_the_server_stopped_not_by_its_answer(
    tmp_path: Path, stop_answers: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _rpc_server(stop_answers, stops=True)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    daemon = Daemon("monitor server", "", url, "", str(tmp_path / "log"), "", object, int, print)
    assert control(daemon, "stop") == 0
    assert capsys.readouterr().out == f"Server {url} is stopped.\n"


def test_ctl_stop_of_a_server_that_keeps_answering_is_an_error_naming_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc_daemon, "START_TIMEOUT", 0.5)
    server = _rpc_server(stop_answers=True, stops=False)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    daemon = Daemon("monitor server", "", url, "", str(tmp_path / "log"), "", object, int, print)
    with pytest.raises(MarteauError, match=f"the monitor server at {url} did not stop; see "):
        control(daemon, "stop")
    server.shutdown()
    server.server_close()
