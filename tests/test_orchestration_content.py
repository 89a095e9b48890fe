"""The Ansible content: layout, documented defaults, shipped with the package."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from marteau.orchestration import content_dir

ROLES = (
    "marteau_node",
    "marteau_lock",
    "marteau_deploy",
    "marteau_bench",
    "marteau_collect",
    "marteau_monitor",
)
STAGES = ("loadtest", "provision", "deploy", "bench", "collect", "unlock")


def test_content_is_found_from_the_package() -> None:
    top = content_dir()
    assert (top / "ansible.cfg").is_file()
    assert (top / "inventory" / "localhost.ini").is_file()
    for stage in STAGES:
        assert (top / "playbooks" / f"{stage}.yml").is_file(), stage


def test_ansible_cfg_has_no_inline_comments_and_keeps_nodes_alive() -> None:
    text = (content_dir() / "ansible.cfg").read_text()
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            assert " #" not in line and " ;" not in line, line
    assert "ServerAliveInterval=5" in text and "ServerAliveCountMax=3" in text
    assert "ControlPersist" in text and "pipelining = True" in text


def test_every_role_default_is_documented() -> None:
    for role in ROLES:
        path = content_dir() / "roles" / role / "defaults" / "main.yml"
        lines = path.read_text().splitlines()
        defaults = yaml.safe_load(path.read_text())
        assert defaults, role
        for name in defaults:
            assert name.startswith(role + "_"), (role, name)
            index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
            assert lines[index - 1].startswith("#"), f"{role}: {name} has no comment above it"


def test_lock_is_released_in_always_without_when() -> None:
    run = yaml.safe_load((content_dir() / "playbooks" / "run.yml").read_text())
    assert run[0]["ansible.builtin.import_playbook"] == "monitor.yml"  # sampling starts first
    block = run[1]["tasks"][0]
    assert [t["ansible.builtin.include_role"]["name"] for t in block["block"]] == [
        "marteau_node",
        "marteau_deploy",
        "marteau_bench",
        "marteau_collect",
    ]
    cleanup, firewall, release = block["always"]
    assert cleanup["ansible.builtin.include_role"]["tasks_from"] == "cleanup"
    assert firewall["ansible.builtin.import_role"]["tasks_from"] == "firewall_remove"
    assert "when" not in firewall  # its tasks decide (idempotent, skipped when off or done)
    assert release["ansible.builtin.include_role"] == {
        "name": "marteau_lock",
        "tasks_from": "release",
    }
    assert "when" not in release and "when" not in block
    text = (content_dir() / "roles" / "marteau_lock" / "tasks" / "release.yml").read_text()
    assert not re.search(r"^\s*when:", text, re.M)


def test_lock_play_takes_nodes_one_at_a_time_in_order() -> None:
    plays = yaml.safe_load((content_dir() / "playbooks" / "lock.yml").read_text())
    check, lock = plays[0], plays[1]
    assert check["hosts"] == "localhost" and check["any_errors_fatal"] is True  # names first
    assert lock["name"].startswith("Lock free nodes")
    assert lock["serial"] == 1 and lock["order"] == "sorted"


def test_bench_starts_async_under_timeout() -> None:
    tasks = yaml.safe_load(
        (content_dir() / "roles" / "marteau_bench" / "tasks" / "main.yml").read_text()
    )
    start = next(t for t in tasks if t["name"].startswith("Start the bench"))
    assert start["poll"] == 0 and "async" in start
    assert "exec timeout -k" in start["ansible.builtin.shell"]["cmd"]
    assert "bench.pgid" in start["ansible.builtin.shell"]["cmd"]
    deploy = (content_dir() / "roles" / "marteau_deploy" / "tasks" / "main.yml").read_text()
    assert "ansible.builtin.unarchive" in deploy and "ansible.builtin.copy" not in deploy


def test_packaged_in_setup_cfg() -> None:
    setup = (Path(__file__).parent.parent / "setup.cfg").read_text()
    assert "ansible/roles/**/*" in setup and "ansible/playbooks/*.yml" in setup


def test_a_wheel_builds_quietly_and_ships_the_ansible_content(tmp_path: Path) -> None:
    """A clean install lists every package (the content's directories too), so setuptools
    does not warn once per directory, and the wheel still carries playbooks and roles."""
    root = Path(__file__).parent.parent
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr
    (wheel,) = tmp_path.glob("marteau-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    content = "marteau/orchestration/ansible/"
    for path in (
        "ansible.cfg",
        "inventory/localhost.ini",
        "playbooks/lockrun.yml",
        "playbooks/vars/run.yml",
        "roles/marteau_bench/library/marteau_bench_status.py",
        "roles/marteau_bench/defaults/main.yml",
    ):
        assert content + path in names, path
    assert not [name for name in names if "__pycache__" in name or name.startswith("tests/")]


def test_the_readme_tour_and_the_service_use_different_ports() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    target = re.findall(r"examples/demo/target\.py --port (\d+)", readme)
    serve = re.findall(r"^marteau serve --port (\d+)", readme, re.M)
    submit = re.findall(r"--server http://127\.0\.0\.1:(\d+)", readme)
    assert target and serve and set(serve) == set(submit)
    assert not set(target) & set(serve), (target, serve)
