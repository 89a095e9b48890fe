"""Drive Ansible through ansible-runner's Python API, the way ANSIBLE-NOTES.md says.

* a fresh `private_data_dir` for every playbook run (a reused one silently
  replays the previous run's extra vars);
* `ansible-playbook` on the PATH, a UTF-8 locale, host key checking ON
  (runner turns it off otherwise), a short ssh control path;
* the inventory path checked before the call (runner takes a missing path
  for inventory *content*);
* `cancel_callback` polled every 0.5 s;
* the extra vars written as one file, every string `!unsafe` (`inert.py`) and
  passed with `-e @FILE`: ansible-runner would put them on the command line as
  JSON, which ansible-core templates, so a job value could run code here;
* Ansible's output appended to one log file, never to the terminal; the
  `command`/`env` artifacts (which hold the caller's environment) removed;
* ansible-runner copies the caller's whole environment into ansible-playbook's
  (and so into a local node's test): what it inherited beyond the allow-list of
  `marteau.orchestration.environment` is dropped first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marteau.errors import MarteauError
from marteau.orchestration import content_dir, inert
from marteau.orchestration.environment import drop_inherited

CONTROL_PATH_DIR = "/tmp/.mt-cp"
Event = dict[str, Any]


@dataclass
class PlayResult:
    """What one playbook run ended with."""

    playbook: str
    status: str  # successful, failed, canceled, timeout
    rc: int
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def hosts_with(self, kind: str) -> set[str]:
        """Hosts counted under `kind` in the recap (failures, dark = unreachable, ok, ...)."""
        return set((self.stats or {}).get(kind, {}) or {})

    def results(self, task_name: str, event: str = "runner_on_ok") -> dict[str, dict]:
        """{host: module result} of the events of `task_name` (the last one wins)."""
        found = {}
        for item in self.events:
            data = item.get("event_data", {})
            if item.get("event") == event and data.get("task") == task_name:
                found[data.get("host")] = data.get("res", {})
        return found

    def failure_messages(self) -> dict[str, str]:
        """{host: message} of failed or unreachable tasks."""
        found = {}
        for item in self.events:
            if item.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                data = item.get("event_data", {})
                if data.get("ignore_errors"):
                    continue
                res = data.get("res", {})
                message = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
                found[data.get("host")] = f"{data.get('task')}: {str(message).strip()}"
        return found


class Ansible:
    """Runs Marteau's playbooks for one run directory."""

    def __init__(self, run_dir: Path, inventory: Path | None = None) -> None:
        self.content = content_dir()
        self.run_dir = run_dir
        self.base = run_dir / "ansible"
        self.log_path = run_dir / "ansible.log"
        if inventory is None:
            inventory = self.content / "inventory" / "localhost.ini"
        inventory = Path(inventory).expanduser()
        if not inventory.exists():
            raise MarteauError(f"{inventory}: no such inventory file or directory")
        self.inventory = inventory.resolve()
        self.count = 0
        self.main_pids: set[int] = set()
        self._lock = threading.Lock()

    def envvars(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        ansible_home = Path(os.path.expanduser("~")) / ".ansible"
        return {
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "ANSIBLE_CONFIG": str(self.content / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(self.content / "roles"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": CONTROL_PATH_DIR,
            "ANSIBLE_HOME": str(ansible_home),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
        }

    def play(
        self,
        playbook: str,
        extravars: dict[str, Any],
        *,
        limit: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        forks: int | None = None,
    ) -> PlayResult:
        """Run `playbooks/<playbook>.yml` in a fresh private data dir and wait for it."""

        self.count += 1
        private = self.base / f"{self.count:02d}-{playbook}"
        if private.exists():
            shutil.rmtree(private)
        private.mkdir(parents=True)
        Path(CONTROL_PATH_DIR).mkdir(mode=0o700, exist_ok=True)
        events: list[Event] = []
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} playbooks/{playbook}.yml =====\n")

        def handler(event: Event) -> bool:
            pid = event.get("pid")
            if pid:
                with self._lock:
                    self.main_pids.add(int(pid))
            if event.get("event") != "runner_retry":  # one per poll and node: not kept
                events.append(event)
            text = event.get("stdout")
            if text:
                log.write(text + "\n")
                log.flush()
            if on_event is not None:
                on_event(event)
            return True

        started = time.monotonic()
        try:
            result = _run_scrubbed(
                private_data_dir=str(private),
                playbook=str(self.content / "playbooks" / f"{playbook}.yml"),
                inventory=str(self.inventory),
                extravars=str(inert.write(extravars, private / "extravars.yml")),
                envvars=self.envvars(),
                settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
                limit=limit,
                forks=forks,
                quiet=True,
                event_handler=handler,
                cancel_callback=cancel or (lambda: False),
                ident="run",
                suppress_env_files=True,
            )
        finally:
            log.close()
            with self._lock:
                self.main_pids.clear()
            for secret in ("command", "env"):
                target = private / "artifacts" / "run" / secret
                if target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
        return PlayResult(
            playbook=playbook,
            status=result.status,
            rc=result.rc if result.rc is not None else -1,
            stats=result.stats or {},
            events=events,
            seconds=time.monotonic() - started,
        )

    def terminate(self) -> None:
        """SIGTERM the running ansible-playbook and its workers (they left its session)."""
        with self._lock:
            mains = set(self.main_pids)
        for pid in mains:
            for target in [*descendants(pid), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, signal.SIGTERM)


def _run_scrubbed(**kwargs: Any) -> Any:
    """`ansible_runner.run` without the caller's environment beyond the allow-list."""
    from ansible_runner.interface import init_runner

    runner = init_runner(**kwargs)
    runner.config.env = drop_inherited(runner.config.env, os.environ)
    runner.run()
    return runner


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            found.append(child)
            frontier.append(child)
    return found
