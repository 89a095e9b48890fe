"""Orchestration figures on real sshd nodes of this machine (needs root).

    .venv/bin/python bench/orchestration.py [--requests 1000000] [--repeat 2] [--isolation]

Prints, for 1 and 3 warm (already provisioned) nodes:

* seconds from launching ``marteau run`` to the first request on every node
  (target <= 8 s for 3 nodes), from the request times in each node's .mrt;
* the spread of the first-request instants across nodes (target <= 50 ms);

then the seconds from the end of the benches to the report on disk for
``--requests`` requests (target <= 10 s for 1 million): collect (fetch) +
release + ``marteau report``, timed on result files of that size placed on
the nodes (a real 1M-request bench takes minutes on this 2-core machine);
and the cold provisioning time of a bare node (1 alone, then 2 at once).

With ``--isolation``, only this instead: what job isolation adds to a warm
3-node run, the four set-ups taken in turn ``--repeat`` times (the machine's
load drifts): node users without sudo (jobs run as the node user, from the
shared virtualenv); with sudo (each job its own Unix user, made and removed);
plus ``--allow-host`` (the job user's egress firewall, installed and
removed); plus ``deps: [six]`` (the job's own virtualenv, from the wheels its
archive carries). Printed: median seconds from launch to the first request
on every node and to ``marteau run``'s exit, and each set-up's difference to
the first.

Uses its own node set (users mtbench1-3, /tmp/mtbench; ``--prefix``) and an HTTP target on
127.0.0.1; everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marteau.orchestration.driver import Ansible  # noqa: E402
from marteau.orchestration.prepare import job_vars, new_job_id  # noqa: E402
from marteau.orchestration.project import locate  # noqa: E402
from marteau.results.compact import CompactWriter, read_compact_raw  # noqa: E402
from marteau.results.records import RESPONSE_STRUCT  # noqa: E402
from tests.nodes import NodeSet  # noqa: E402
from tests.support.commands import MARTEAU  # noqa: E402
from tests.support.node_runs import POOL  # noqa: E402
from tests.support.projects import TEST  # noqa: E402

CONF = """\
[main]
title=Tiny
description=One GET
url={url}

[test_get]
description=GET /

[bench]
cycles = 1
duration = 2
startup_delay = 0
sleep_time = 0
cycle_time = 0
log_to =
log_path = tiny-bench.log
result_path = tiny-bench.xml
sleep_time_min = 0.01
sleep_time_max = 0.01
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_target() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def first_requests(run_dir: Path) -> dict[str, float]:
    found = {}
    for path in sorted((run_dir / "results").glob("*/*.mrt")):
        raw = read_compact_raw(path)
        times = [r[0] for r in RESPONSE_STRUCT.iter_unpack(bytes(raw.responses))]
        if times:
            found[path.parent.name] = min(times)
    return found


def warm_run(
    project: Path, inventory: Path, count: int, work: Path, *extra: str
) -> tuple[float, float, dict]:
    """(launch -> first request on every node, spread of those, run.json timings with
    `exit`: launch -> marteau run's exit)."""
    launched = time.time()
    result = subprocess.run(
        [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain"]
        + ["--nodes", str(count), "-c", "1", "-D", "2", *extra],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"marteau run failed:\n{result.stdout}\n{result.stderr}")
    run_dir = Path(
        next(x for x in result.stdout.splitlines() if x.startswith("Run directory: ")).split(": ")[
            1
        ]
    )
    ended = time.time() - launched
    firsts = first_requests(run_dir)
    if len(firsts) != count:
        logs = "".join(p.read_text()[-3000:] for p in (run_dir / "results").glob("*/bench.log"))
        raise SystemExit(
            f"{count - len(firsts)} node(s) recorded no request:\n{result.stdout}{logs}"
        )
    timings = json.loads((run_dir / "run.json").read_text())["timings"]
    timings["exit"] = ended
    return max(firsts.values()) - launched, max(firsts.values()) - min(firsts.values()), timings


def isolation_costs(
    project: Path, inventory: Path, nodes: NodeSet, work: Path, url: str, repeat: int
) -> None:
    """What the job user, its firewall and its own virtualenv add to a warm 3-node run."""
    allow = ("--allow-host", url.split("//")[1])
    with_deps = work / "project-deps"
    shutil.copytree(project, with_deps)
    config = with_deps / ".marteau.yml"
    config.write_text(config.read_text() + "deps: [six]\n")
    setups = {
        "node user, no sudo": (project, False, ()),
        "job user": (project, True, ()),
        "job user + firewall": (project, True, allow),
        "job user + firewall + deps venv": (with_deps, True, allow),
    }
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in setups}
    for source, sudo, extra in setups.values():  # warm every path once
        isolate(nodes, sudo)
        warm_run(source, inventory, 3, work, *extra)
    for _ in range(repeat):
        for label, (source, sudo, extra) in setups.items():
            isolate(nodes, sudo)
            first, _, timings = warm_run(source, inventory, 3, work, *extra)
            samples[label].append((first, timings["exit"]))
    isolate(nodes, True)
    base_first = statistics.median(s[0] for s in samples["node user, no sudo"])
    base_exit = statistics.median(s[1] for s in samples["node user, no sudo"])
    print(f"job isolation, warm 3-node run (-c 1 -D 2), median of {repeat} run(s) each:")
    for label, runs in samples.items():
        first = statistics.median(s[0] for s in runs)
        ended = statistics.median(s[1] for s in runs)
        print(
            f"  {label:33s} launch -> first request {first:5.2f}s ({first - base_first:+.2f}), "
            f"-> exit {ended:5.2f}s ({ended - base_exit:+.2f}); runs: "
            + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in runs)
        )


def isolate(nodes: NodeSet, sudo: bool) -> None:
    """Give the node users passwordless sudo (jobs isolated) or take it away."""
    for node in nodes.nodes:
        if sudo:
            node.grant_sudo()
        else:
            node.revoke_sudo()


def big_results(sample: Path, requests: int, target: Path) -> None:
    """A .mrt of `requests` responses, made of copies of a real bench's records."""
    raw = read_compact_raw(sample)
    responses = bytes(raw.responses)
    tests = bytes(raw.tests)
    per = len(responses) // RESPONSE_STRUCT.size
    copies = -(-requests // per)
    with CompactWriter(target, raw.config) as writer:
        writer.strings(raw.strings[1:])
        writer.details(raw.details)
        writer.records(b"R", (responses * copies)[: requests * RESPONSE_STRUCT.size])
        writer.records(b"T", tests * copies)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--isolation", action="store_true", help="only what job isolation adds (see the docstring)"
    )
    parser.add_argument(
        "--prefix", default="mtbench", help="node users PREFIX1-3, in /tmp/PREFIX (another set)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (it creates Unix users and sshd nodes)", file=sys.stderr)
        return 2
    nodes = NodeSet(base=Path("/tmp") / args.prefix, prefix=args.prefix).up()
    work = Path(tempfile.mkdtemp(prefix="marteau-bench-"))
    try:
        url = start_target()
        project = work / "project"
        project.mkdir()
        (project / "loadtest.py").write_text(TEST)
        (project / "Tiny.conf").write_text(CONF.format(url=url))
        (project / ".marteau.yml").write_text(
            "name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n"
        )
        inventory = nodes.write_inventory(work / "nodes.ini", group=POOL)
        if args.isolation:
            isolation_costs(project, inventory, nodes, work, url, args.repeat)
            return 0

        # Cold provisioning: one bare node alone, then two at once.
        variables = job_vars(locate(str(project)), work / "prep", new_job_id())
        ansible = Ansible(work / "prep", inventory)
        names = nodes.names()
        cold = {}
        for label, hosts in (("1 node", names[:1]), ("2 nodes at once", names[1:])):
            result = ansible.play("provision", {**variables, "marteau_hosts": ",".join(hosts)})
            if not result.ok:
                raise SystemExit(f"provision failed: {result.failure_messages()}")
            cold[label] = result.seconds
        again = ansible.play("provision", {**variables, "marteau_hosts": POOL})
        changed = sorted(again.hosts_with("changed"))

        # Warm runs.
        figures = {}
        for count in (1, 3):
            samples = [warm_run(project, inventory, count, work) for _ in range(args.repeat)]
            figures[count] = samples

        # End of the benches -> report on disk, for --requests requests.
        last = sorted((work / "marteau-runs").iterdir())[-1]
        sample = next((last / "results").glob("*/*.mrt"))
        job = new_job_id()
        big_dir = work / "big"
        big_dir.mkdir()
        share = -(-args.requests // len(nodes.nodes))
        made = time.monotonic()
        big_results(sample, share, big_dir / "big-bench.mrt")
        made = time.monotonic() - made
        for node in nodes.nodes:
            test_dir = node.home / ".marteau" / "jobs" / job / "test"
            test_dir.mkdir(parents=True)
            (test_dir / "big-bench.mrt").write_bytes((big_dir / "big-bench.mrt").read_bytes())
            subprocess.run(
                ["chown", "-R", f"{node.name}:{node.name}", str(node.home / ".marteau" / "jobs")],
                check=True,
            )
        run_dir = work / "big-run"
        run_dir.mkdir()
        collector = Ansible(run_dir, inventory)
        extravars = {"marteau_job": job, "marteau_run_dir": str(run_dir), "marteau_hosts": POOL}
        t0 = time.monotonic()
        collected = collector.play("collect", extravars)
        t_collect = time.monotonic() - t0
        collector.play("unlock", extravars)
        t_release = time.monotonic() - t0 - t_collect
        files = sorted(str(p) for p in (run_dir / "results").glob("*/*.mrt"))
        t1 = time.monotonic()
        report = subprocess.run(
            [MARTEAU, "report", "--html", "-r", str(run_dir / "report"), *files],
            capture_output=True,
            text=True,
        )
        t_report = time.monotonic() - t1
        if not collected.ok or report.returncode != 0:
            raise SystemExit(
                f"collect/report failed: {collected.failure_messages()} {report.stderr[-2000:]}"
            )
        summary = json.loads(next((run_dir / "report").rglob("summary.json")).read_text())

        size = (big_dir / "big-bench.mrt").stat().st_size
        print("Marteau orchestration figures (real sshd nodes on 127.0.0.2-4, this machine)")
        print(
            f"cold provisioning: 1 node {cold['1 node']:.1f}s; 2 nodes at once {cold['2 nodes at once']:.1f}s"
        )
        print(
            f"second provision of 3 up-to-date nodes: {again.seconds:.1f}s, changed hosts: {changed or 'none'}"
        )
        for count, samples in figures.items():
            to_first = [s[0] for s in samples]
            spreads = [s[1] * 1000 for s in samples]
            print(
                f"warm, {count} node(s): launch -> first request on every node "
                f"{statistics.median(to_first):.2f}s (runs: {', '.join(f'{x:.2f}' for x in to_first)}); "
                f"spread of first requests {statistics.median(spreads):.1f} ms "
                f"(runs: {', '.join(f'{x:.1f}' for x in spreads)})"
            )
            stages = samples[-1][2]
            print(
                "   stages (s since launch): "
                + ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if isinstance(v, float))
            )
        print(
            f"{summary['totals']['requests']:,} requests on {len(nodes.nodes)} nodes "
            f"({size / 1e6:.0f} MB of .mrt per node, made in {made:.1f}s): "
            f"collect {t_collect:.1f}s + release {t_release:.1f}s + report {t_report:.1f}s "
            f"= {t_collect + t_release + t_report:.1f}s to the report on disk"
        )
    finally:
        nodes.down()
        subprocess.run(["rm", "-rf", str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
