"""What the job user's egress firewall costs (needs root and nft).

    .venv/bin/python bench/firewall.py [--repeat 5]

Prints the median seconds of:

* the module alone (roles/marteau_bench/library/marteau_firewall.py): one
  install and one removal, as Ansible runs it (a Python process, `nft -j -f -`);
* the bench role's two task files (`firewall.yml`, `firewall_remove.yml`)
  through `ansible-playbook` with `become` on 3 hosts at once (local
  connection: the ssh round trip of a real node is not in it), minus the same
  playbook with the firewall off: what the firewall adds to a 3-node run.

Uses three throwaway users (mtfwbench1-3), removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marteau.orchestration import content_dir  # noqa: E402

MODULE = content_dir() / "roles" / "marteau_bench" / "library" / "marteau_firewall.py"
USERS = [f"mtfwbench{i}" for i in (1, 2, 3)]
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Install
      ansible.builtin.include_role: {name: marteau_bench, tasks_from: firewall}
      when: marteau_bench_firewall | default(true) | bool
    - name: Remove
      ansible.builtin.import_role: {name: marteau_bench, tasks_from: firewall_remove}
"""


def timed(argv: list[str], **kwargs: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the processes it ran): on a busy machine the wall
    time is mostly waiting for a core, the CPU time is what the work costs."""
    start, used = time.perf_counter(), cpu()
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start, cpu() - used


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def show(what: str, runs: list[tuple[float, float]]) -> tuple[float, float]:
    wall, used = (statistics.median(r[i] for r in runs) for i in (0, 1))
    print(f"{what}: {wall:.3f} s wall, {used:.3f} s CPU")
    return wall, used


def module_call(directory: Path, **args: object) -> tuple[float, float]:
    path = directory / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    return timed([sys.executable, str(MODULE), str(path)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    for user in USERS:
        subprocess.run(["useradd", "-M", "-U", "-p", "*", "-s", "/usr/sbin/nologin", user])
    uids = [int(subprocess.check_output(["id", "-u", user])) for user in USERS]
    try:
        with tempfile.TemporaryDirectory(prefix="mtfwbench") as tmp:
            directory = Path(tmp)
            installs, removals = [], []
            for _ in range(repeat):
                installs.append(module_call(directory, uid=uids[0], allow=["127.0.0.2:8080"]))
                removals.append(module_call(directory, uid=uids[0], state="absent"))
            show("module install", installs)
            show("module removal", removals)

            inventory = directory / "inventory.ini"
            inventory.write_text(
                "".join(
                    f"n{i} ansible_connection=local marteau_job_uid={uid} "
                    f"ansible_python_interpreter={sys.executable}\n"
                    for i, uid in enumerate(uids)
                )
            )
            (directory / "play.yml").write_text(PLAYBOOK)
            env = dict(
                os.environ,
                ANSIBLE_CONFIG=str(content_dir() / "ansible.cfg"),
                ANSIBLE_ROLES_PATH=str(content_dir() / "roles"),
                PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            )
            argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory)]
            argv += [str(directory / "play.yml"), "-e", "marteau_bench_allowed_hosts=127.0.0.2"]
            on, off = [], []
            for _ in range(repeat):
                on.append(timed(argv, env=env))
                off.append(timed(argv + ["-e", "marteau_bench_firewall=false"], env=env))
            with_firewall = show("playbook, 3 hosts, firewall on ", on)
            without = show("playbook, 3 hosts, firewall off", off)
            print(
                f"added by the firewall: {with_firewall[0] - without[0]:.3f} s wall, "
                f"{(with_firewall[1] - without[1]) / 3:.3f} s CPU per host"
            )
    finally:
        for uid in uids:
            with tempfile.TemporaryDirectory() as tmp:
                module_call(Path(tmp), uid=uid, state="absent")
        for user in USERS:
            subprocess.run(["userdel", user], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
