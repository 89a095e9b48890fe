"""The job user's egress firewall module (roles/marteau_bench/library/marteau_firewall.py)
run on this machine as Ansible runs it, and the nftables table it leaves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from marteau.orchestration import content_dir

MODULE = content_dir() / "roles" / "marteau_bench" / "library" / "marteau_firewall.py"


def call(tmp_path: Path, **args: object) -> dict:
    """The module as Ansible runs it: a python process reading its arguments from a file."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(path)], capture_output=True, text=True, timeout=60
    )
    return json.loads(done.stdout)


def table() -> str:
    return subprocess.run(
        ["nft", "list", "table", "inet", "marteau"], capture_output=True, text=True
    ).stdout
