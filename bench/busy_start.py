"""The start barrier on a busy machine: 8 sshd nodes, both cores kept busy (needs root).

    .venv/bin/python bench/busy_start.py [--nodes 8] [--runs 2] [--hog 2]

`marteau run` on ``--nodes`` real sshd nodes of this machine (tests/nodes.py,
users mtbusy1-N on 127.0.0.2-N+1) while ``stress-ng --cpu HOG`` keeps the cores
busy, ``--runs`` times (the first provisions the nodes cold, the next ones run
warm). For each run it prints the exit status, where the time went, the start
barrier's measured fan-out and lead, the cycles each node recorded (tests per
cycle) and the spread of the first requests across the nodes. It exits 1 when
any node missed a cycle or any load was lost: the proof that no node starts
late in silence (before the barrier, a fixed 2 s lead let 8 nodes of a loaded
machine start 10 s late and record nothing, with exit 0).

This is a benchmark rather than a test because one cold run takes 2-3
minutes here. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marteau.results import load  # noqa: E402
from tests.nodes import NodeSet, available  # noqa: E402
from tests.servers import LocalServer, ok  # noqa: E402
from tests.support.projects import CONF, TEST  # noqa: E402

MARTEAU = str(Path(sys.executable).with_name("marteau"))
POOL = "pool"
CYCLES = "1:2"
DURATION = 3


def one_run(project: Path, inventory: Path, nodes: NodeSet, work: Path) -> bool:
    """One `marteau run` on every node; prints its figures; True when every cycle was recorded."""
    started = time.monotonic()
    run = subprocess.run(
        [MARTEAU, "run", str(project), "-i", str(inventory), "--pool", POOL, "--plain"]
        + ["--nodes", str(len(nodes.nodes)), "-c", CYCLES, "-D", str(DURATION)]
        + ["--workers", "1"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.monotonic() - started
    line = next((x for x in run.stdout.splitlines() if x.startswith("Run directory: ")), None)
    print(f"  exit {run.returncode} after {elapsed:.1f}s")
    if line is None:
        print(run.stdout[-3000:] + run.stderr[-3000:])
        return False
    run_dir = Path(line.split(": ", 1)[1])
    provenance = json.loads((run_dir / "run.json").read_text())
    timings = provenance["timings"]
    stages = ("lock_start", "provision_start", "deploy_start", "bench_start", "bench_armed")
    print("  " + ", ".join(f"{k} {timings[k]:.1f}s" for k in stages if k in timings))
    barrier = provenance.get("start_barrier") or {}
    print(
        f"  start barrier: fan-out {barrier.get('fanout', float('nan')):.2f}s, "
        f"lead {barrier.get('lead', float('nan')):.2f}s"
    )
    wanted = set(range(len(CYCLES.split(":"))))
    good = run.returncode == 0 and not provenance.get("lost") and not provenance.get("missing")
    firsts = []
    for name in nodes.names():
        paths = sorted((run_dir / "results" / name).glob("*.mrt"))
        if not paths:
            print(f"  {name}: no results ({provenance['missing'].get(name, '?')})")
            good = False
            continue
        results = load(str(paths[0]))
        cycles = results.tests["cycle"].tolist()
        per_cycle = {c: cycles.count(c) for c in sorted(wanted)}
        lost = provenance.get("lost", {}).get(name, [])
        print(f"  {name}: tests per cycle {per_cycle}" + (f", LOST: {lost}" if lost else ""))
        good = good and all(per_cycle.values())
        if len(results.responses):
            firsts.append(float(results.responses["time"].min()))
    if firsts:
        print(f"  first requests within {(max(firsts) - min(firsts)) * 1000:.0f} ms")
    return good


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hog", type=int, default=2, help="stress-ng CPU workers (0: none)")
    args = parser.parse_args()
    reason = available()
    if reason or (args.hog and not shutil.which("stress-ng")):
        print(reason or "stress-ng is missing (make system-deps)", file=sys.stderr)
        return 2
    nodes = NodeSet(base=Path("/tmp/mtbusy"), prefix="mtbusy", count=args.nodes)
    hog = None
    good = True
    try:
        nodes.up()
        if args.hog:
            hog = subprocess.Popen(
                ["stress-ng", "--cpu", str(args.hog), "--timeout", "3600", "--quiet"],
                start_new_session=True,
            )
        with (
            tempfile.TemporaryDirectory() as tmp,
            LocalServer(routes={"/": lambda request: ok("hello")}) as target,
        ):
            work = Path(tmp)
            project = work / "project"
            project.mkdir()
            (project / "loadtest.py").write_text(TEST)
            (project / "Tiny.conf").write_text(CONF.format(url=target.url))
            (project / ".marteau.yml").write_text(
                "name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n"
            )
            inventory = nodes.write_inventory(work / "nodes.ini", group=POOL)
            print(f"{args.nodes} nodes, stress-ng --cpu {args.hog}, cycles {CYCLES} of {DURATION}s")
            for index in range(args.runs):
                print(f"run {index + 1} ({'cold' if index == 0 else 'warm'}):")
                good = one_run(project, inventory, nodes, work) and good
    finally:
        if hog is not None:
            os.killpg(hog.pid, signal.SIGTERM)
            hog.wait(timeout=30)
        nodes.down()
    print("every node recorded every cycle" if good else "LOAD LOST: see above")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
