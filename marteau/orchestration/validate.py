"""What `marteau run` checks before it locks a node: the test, its `.conf`, the URL, the pool.

A mistake found after locking, provisioning and deploying costs a minute and
comes back as an Ansible failure; found here it costs seconds and names the
file, key and line (exit 2). The user's test code is never imported on the
controller: the script is parsed with `ast`, which runs nothing. The inventory
is read by `ansible-inventory --list` with the environment the playbooks get,
so the pool is the group they would see.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marteau.errors import MarteauError
from marteau.funkload.config import FunkLoadConfig
from marteau.orchestration.project import Project

MAX_SCRIPT = 4 * 2**20  # bytes of test script parsed; a bigger one is not checked
MAX_CONF = 2**20  # bytes of `.conf`: a FunkLoad conf is a few kilobytes
# Bases that define no test method: a method not found in the test's own classes
# is missing when every other base is one of these.
NO_TEST_METHODS = {"FunkLoadTestCase", "TestCase", "object"}
URL_SCHEMES = ("http", "https")
INVENTORY_TIMEOUT = 60.0


@dataclass
class Pool:
    """Where the nodes come from, and who asked for that pool (for the messages)."""

    name: str
    where: str  # "--pool" or "<.marteau.yml>:<line>: key 'pool'" or "the default pool"
    wanted: int
    named: list[str]  # `nodes: [h1, h2]` of .marteau.yml
    named_where: str = ""


def where(project: Project, key: str) -> str:
    """`<.marteau.yml>:<line>: key '<key>'`: the place a message points at."""
    line = project.lines.get(key)
    return f"{project.config_path}:{line}: key {key!r}" if line else str(project.config_path)


def check_test(project: Project) -> list[str]:
    """MarteauError when the script has no such class or method; warnings when it cannot tell."""
    at = where(project, "test")
    script = project.test_dir / project.script
    class_name, method = project.test.split(".", 1)
    try:
        size = script.stat().st_size
        if size > MAX_SCRIPT:
            return [f"{at}: {script} is over {MAX_SCRIPT} bytes: {project.test} not checked"]
        tree = ast.parse(script.read_bytes(), filename=str(script))
    except SyntaxError as exc:
        raise MarteauError(f"{script}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (OSError, ValueError) as exc:
        raise MarteauError(f"{script}: cannot read: {exc}") from None
    except (RecursionError, MemoryError):
        return [f"{at}: {script} is nested too deeply to parse: {project.test} not checked"]
    classes, imported = _top_level(tree.body)
    found = classes.get(class_name)
    if found is None:
        if class_name in imported or "*" in imported:
            return [
                f"{at}: cannot tell whether {project.test} exists: {class_name} is imported "
                f"into {script.name}, not defined there; the bench will say"
            ]
        known = ", ".join(sorted(classes)) or "none"
        raise MarteauError(f"{at}: {script} has no class {class_name!r} (its classes: {known})")
    unknown = _find_method(found, method, classes, set())
    if unknown is None:
        return []
    if unknown:
        return [
            f"{at}: cannot tell whether {project.test} exists: {class_name} inherits from "
            f"{', '.join(unknown)}, defined outside {script.name}; the bench will say"
        ]
    methods = sorted(name for name in _defined(found) if name.startswith("test"))
    raise MarteauError(
        f"{at}: class {class_name} ({script}:{found.lineno}) has no method {method!r}"
        f" (its test methods: {', '.join(methods) or 'none'})"
    )


def _top_level(body: list[ast.stmt]) -> tuple[dict[str, ast.ClassDef], set[str]]:
    """The classes a module defines and the names it imports, outside functions and classes."""
    classes: dict[str, ast.ClassDef] = {}
    imported: set[str] = set()
    for node in body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in _blocks(node):
                more, names = _top_level(block)
                classes.update(more)
                imported |= names
    return classes, imported


def _blocks(node: ast.If | ast.Try | ast.With) -> list[list[ast.stmt]]:
    blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
    return blocks + [handler.body for handler in getattr(node, "handlers", [])]


def _defined(cls: ast.ClassDef) -> set[str]:
    """The names a class body binds: its methods and its plain assignments."""
    names = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _find_method(
    cls: ast.ClassDef, method: str, classes: dict[str, ast.ClassDef], seen: set[str]
) -> list[str] | None:
    """None: found. Else the bases it could still come from ([]: it is missing)."""
    if method in _defined(cls):
        return None
    seen.add(cls.name)
    unknown: list[str] = []
    for base in cls.bases:
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
        if isinstance(base, ast.Name) and name in classes and name not in seen:
            more = _find_method(classes[name], method, classes, seen)
            if more is None:
                return None
            unknown += more
        elif name not in NO_TEST_METHODS:
            unknown.append(ast.unparse(base))
    return unknown


def check_conf(project: Project) -> FunkLoadConfig:
    """The test's `<Class>.conf`, parsed as the bench will parse it."""
    path = project.test_dir / f"{project.test_class}.conf"
    if not path.is_file():
        raise MarteauError(
            f"{where(project, 'test')}: {path} does not exist "
            f"(the test's configuration: {project.test_class}.conf beside {project.script})"
        )
    if path.stat().st_size > MAX_CONF:
        raise MarteauError(f"{path}: over {MAX_CONF} bytes, not a FunkLoad configuration")
    return FunkLoadConfig(str(path))


def check_url(url: str, at: str) -> None:
    """A URL the bench can load: http or https, and a host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise MarteauError(f"{at}: {url!r}: {exc}") from None
    if parts.scheme not in URL_SCHEMES or not host:
        raise MarteauError(
            f"{at}: {url!r}: expected an http:// or https:// URL with a host, "
            "such as http://localhost:8080"
        )


def conf_url(conf: FunkLoadConfig) -> tuple[str, str] | None:
    """The conf's `[main] url` and where it is (`<file>:<line>: [main] url`), if it has one."""
    if not conf.parser.has_option("main", "url"):
        return None
    url = conf.get("main", "url")
    return url, f"{conf.path}:{_key_line(Path(conf.path), 'main', 'url')}: [main] url"


def _key_line(path: Path, section: str, key: str) -> int:
    """The line of `key` in `[section]` of an ini file (0 when not found)."""
    current = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if text.startswith("[") and text.endswith("]"):
                current = text[1:-1].strip()
            elif current == section and text.split("=", 1)[0].split(":", 1)[0].strip() == key:
                return number
    return 0


def inventory_groups(inventory: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """{group: every host in it or its children} from `ansible-inventory --list`."""
    command = shutil.which("ansible-inventory", path=env.get("PATH")) or str(
        Path(sys.executable).with_name("ansible-inventory")
    )
    env = {**os.environ, **env, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True"}
    try:
        result = subprocess.run(
            [command, "-i", str(inventory), "--list"],
            capture_output=True,
            text=True,
            env=env,
            timeout=INVENTORY_TIMEOUT,
        )
        data = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise MarteauError(f"{inventory}: cannot read the inventory: {exc}") from None
    if not isinstance(data, dict):
        lines = [line for line in result.stderr.splitlines() if "Warning" not in line]
        raise MarteauError(
            f"{inventory}: cannot read the inventory: {' '.join(lines[-3:]).strip()}"
        )

    def hosts(group: str, seen: set[str]) -> list[str]:
        seen.add(group)
        entry: Any = data.get(group) or {}
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                found += [h for h in hosts(child, seen) if h not in found]
        return found

    return {name: hosts(name, set()) for name in data if name != "_meta"}


def check_pool(inventory: Path, env: dict[str, str], pool: Pool) -> None:
    """The pool is a group of the inventory with enough hosts (and the named ones)."""
    groups = inventory_groups(inventory, env)
    if pool.name not in groups:
        names = ", ".join(sorted(g for g in groups if g not in ("all", "ungrouped"))) or "none"
        raise MarteauError(
            f"{pool.where}: no group {pool.name!r} in the inventory {inventory} (its groups: {names})"
        )
    hosts = groups[pool.name]
    outside = [host for host in pool.named if host not in hosts]
    if outside:
        raise MarteauError(
            f"{pool.named_where}: {', '.join(outside)} not in pool {pool.name!r} of {inventory} "
            f"(its hosts: {', '.join(hosts) or 'none'})"
        )
    if len(hosts) < pool.wanted:
        raise MarteauError(
            f"{pool.where}: pool {pool.name!r} of {inventory} has {len(hosts)} host(s), "
            f"{pool.wanted} wanted"
        )


def check_run(
    project: Project,
    url: str | None,
    inventory: Path,
    env: dict[str, str],
    pool: Pool,
    warn: Callable[[str], None],
) -> None:
    """Every check, in the order a user fixes things; `warn` gets what it cannot tell."""
    for warning in check_test(project):
        warn(warning)
    conf = check_conf(project)
    if url is not None:
        check_url(url, "-u/--url")
    elif (found := conf_url(conf)) is not None:
        check_url(*found)
    check_pool(inventory, env, pool)
