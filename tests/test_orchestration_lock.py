"""The node lock module itself (roles/marteau_lock/library/marteau_lock.py), run
as Ansible runs it: a python process reading its arguments from a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from marteau.orchestration import content_dir

MODULE = content_dir() / "roles" / "marteau_lock" / "library" / "marteau_lock.py"


def start(tmp_path: Path, name: str, **args: object) -> subprocess.Popen:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    return subprocess.Popen(
        [sys.executable, str(MODULE), str(path)], stdout=subprocess.PIPE, text=True
    )


def call(tmp_path: Path, name: str, **args: object) -> dict:
    out, _ = start(tmp_path, name, **args).communicate(timeout=30)
    return json.loads(out)


def test_five_racing_jobs_one_wins(tmp_path: Path) -> None:
    lock = str(tmp_path / "node" / "lock.json")
    racers = [
        start(tmp_path, f"job{i}", path=lock, job=f"job{i}", owner=f"u{i}", ttl=60)
        for i in range(5)
    ]
    results = [json.loads(p.communicate(timeout=30)[0]) for p in racers]
    winners = [r for r in results if r["acquired"]]
    assert len(winners) == 1
    holder = winners[0]["holder"]["job"]
    assert all(r["holder"]["job"] == holder for r in results)
    assert json.loads(Path(lock).read_text())["job"] == holder


def test_take_again_release_and_expiry(tmp_path: Path) -> None:
    lock = str(tmp_path / "lock.json")
    first = call(tmp_path, "a", path=lock, job="a", owner="me", ttl=60)
    assert first["acquired"] and first["changed"]
    again = call(tmp_path, "a2", path=lock, job="a", owner="me", ttl=60)
    assert again["acquired"] and not again["changed"]  # idempotent for its own job
    assert again["holder"]["taken"] == first["holder"]["taken"]
    other = call(tmp_path, "b", path=lock, job="b", owner="you", ttl=60)
    assert not other["acquired"] and other["holder"]["job"] == "a"
    kept = call(tmp_path, "b-release", path=lock, job="b", state="absent")
    assert not kept["released"] and Path(lock).exists()
    released = call(tmp_path, "a-release", path=lock, job="a", state="absent")
    assert released["released"] and not Path(lock).exists()
    Path(lock).write_text(
        json.dumps({"job": "old", "owner": "ghost", "taken": 1, "expires": time.time() - 5})
    )
    taken = call(tmp_path, "c", path=lock, job="c", owner="me", ttl=60)
    assert taken["acquired"] and taken["taken_over"]["job"] == "old"
    assert "took over the expired lock of job old" in json.dumps(taken["warnings"])
    forced = call(tmp_path, "force", path=lock, job="x", state="absent", force=True)
    assert forced["released"] and forced["was"]["job"] == "c"


def test_an_unwritable_lock_is_reported_not_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = call(tmp_path, "z", path=str(blocked / "lock.json"), job="z", owner="me")
    assert not result["acquired"] and "Error" in result["error"]
