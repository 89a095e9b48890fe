"""`marteau run` with a monitored host, on real sshd nodes (tests/nodes.py), and a real
Prometheus server: two nodes bench, the third is the inventory group `monitor`.

The agent is installed from the run's wheelhouse with the `monitor` extra,
samples from before the first cycle to after the last, and its samples come
home with the host's clock offset; the report charts them per host on the
time charts' axis and averages them per cycle in summary.json, beside the
Prometheus queries' values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.nodes import NodeSet
from tests.prometheus_server import prometheus
from tests.servers import LocalServer, ok
from tests.support.node_runs import run_dir_of
from tests.support.projects import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))


def inventory(nodes: NodeSet, path: Path) -> Path:
    """Nodes 1 and 2 in the pool, node 3 monitored (with its description)."""
    common = [
        f"ansible_port={nodes.port}",
        f"ansible_ssh_private_key_file={nodes.key}",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={nodes.known_hosts}'",
        "ansible_python_interpreter=/usr/bin/python3",
    ]
    first, second, third = nodes.nodes[:3]
    lines = ["[pool]"]
    lines += [f"{n.name} ansible_host={n.address} ansible_user={n.name}" for n in (first, second)]
    lines += ["[monitor]"]
    lines += [
        f"{third.name} ansible_host={third.address} ansible_user={third.name} "
        "marteau_monitor_description='The database'"
    ]
    lines += ["[pool:vars]", *common, "[monitor:vars]", *common, ""]
    path.write_text("\n".join(lines))
    return path


def test_run_monitors_the_monitor_group_and_reports_it(sshd_nodes: NodeSet, tmp_path: Path) -> None:
    for node in sshd_nodes.nodes:
        node.start()
    monitored = sshd_nodes.nodes[2]
    project = tmp_path / "project"
    project.mkdir()
    with (
        LocalServer(routes={"/": lambda request: ok("hello")}) as target,
        prometheus(tmp_path) as prom,
    ):
        (project / "loadtest.py").write_text(TEST)
        (project / "Tiny.conf").write_text(CONF.format(url=target.url))
        (project / ".marteau.yml").write_text(
            "script: loadtest.py\ntest: Tiny.test_get\nnodes: 2\n"
            f"monitor:\n  interval: 0.5\n  prometheus: {prom}\n"
            "  queries:\n    scraped: scrape_samples_scraped\n"
        )
        run = subprocess.run(
            [MARTEAU, "run", str(project), "-i", str(inventory(sshd_nodes, tmp_path / "inv.ini")),
             "--pool", "pool", "--plain"],
            cwd=tmp_path, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{monitored.name}: monitored" in run.stdout
    run_dir = run_dir_of(run.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["monitored"] == [monitored.name]
    assert sorted(provenance["nodes"]) == sorted(n.name for n in sshd_nodes.nodes[:2])
    host_dir = run_dir / "monitors" / monitored.name
    described = json.loads((host_dir / "host.json").read_text())
    assert described["name"] == monitored.name and described["description"] == "The database"
    assert abs(described["clock_offset"]) < 0.5  # the same clock: a round trip's error
    lines = (host_dir / "samples.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["host"] == monitored.name
    assert json.loads(lines[-1])["stopped"] == "stopped"  # stopped by the run, not a bound
    # the agent is gone and its directory too
    assert not [p for p in monitored.processes() if "monitor" in p[1]]
    assert not list((monitored.home / ".marteau" / "monitor").glob("*"))
    summary = json.loads(next((run_dir / "report").rglob("summary.json")).read_text())
    host = summary["monitors"][monitored.name]
    assert host["description"] == "The database"
    assert [(c["cycle"], c["cvus"]) for c in host["cycles"]] == [(0, 2), (1, 4)]
    assert all(c["samples"] >= 2 and 0 <= c["cpu_percent"] <= 100 for c in host["cycles"])
    (prom_host,) = [name for name in summary["monitors"] if name.startswith("127.0.0.1_")]
    assert all(c["scraped"] > 0 for c in summary["monitors"][prom_host]["cycles"])
    report = next((run_dir / "report").rglob("index.html")).parent
    for chart in ("MonitorCPU", "MonitorMemFree", "MonitorNetwork", "MonitorCUs"):
        assert (report / f"{monitored.name}_{chart}.png").stat().st_size > 1000, chart
    assert (report / f"{prom_host}_MonitorOther.png").exists()
    html = (report / "index.html").read_text()
    assert f"<h3>{monitored.name}: The database</h3>" in html
