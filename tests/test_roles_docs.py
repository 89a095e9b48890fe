"""The roles' own documentation cannot drift from what they run.

Each role's `meta/argument_specs.yml` (checked by ansible-core before an entry
point's first task) has one option per variable of `defaults/main.yml`, with its
default and its comment; the modules' DOCUMENTATION is what `ansible-doc`
renders and what their `argument_spec` takes; each role's README names every
variable and entry point."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from marteau.orchestration import content_dir

ROOT = content_dir()
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
ANSIBLE_DOC = str(Path(sys.executable).with_name("ansible-doc"))
VARIABLE = re.compile(r"^([a-z][a-z0-9_]*):", re.M)


class Unsafe(str):
    """A YAML `!unsafe` string: ansible-core never templates it."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps the `!unsafe` tag visible."""


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))


def load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader


def comments(path: Path) -> dict[str, str]:
    """Each variable of a defaults file -> the comment lines right above it, joined."""
    lines = path.read_text().splitlines()
    found = {}
    for index, line in enumerate(lines):
        if match := VARIABLE.match(line):
            above = []
            for previous in reversed(lines[:index]):
                if not previous.startswith("#"):
                    break
                above.insert(0, previous.lstrip("#").strip())
            found[match.group(1)] = " ".join(above)
    return found


def specs(role: str) -> dict[str, dict]:
    return load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def spec_type(default: Any) -> str:
    """The argument spec type a literal default suggests (for the failure message)."""
    return {bool: "bool", int: "int", float: "float", list: "list"}.get(type(default), "str")


def where(role: str, name: str) -> str:
    return f"roles/{role}/{name}"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_an_option_of_the_main_entry_point(role: str) -> None:
    defaults_file = ROOT / "roles" / role / "defaults" / "main.yml"
    defaults = load(defaults_file)
    notes = comments(defaults_file)
    options = specs(role)["main"]["options"]
    spec_file = where(role, "meta/argument_specs.yml")
    for name, value in defaults.items():
        suggested = yaml.safe_dump(
            {
                name: {
                    "type": spec_type(value),
                    "default": value,
                    "description": notes[name],
                }
            },
            width=90,
        )
        assert name in options, (
            f"{spec_file}: entry point 'main' has no option {name}, a variable of "
            f"{where(role, 'defaults/main.yml')}; add (with its real type):\n{suggested}"
        )
        option = options[name]
        assert option.get("default") == value, f"{spec_file}: {name}: default differs"
        templated = isinstance(value, str) and "{" in value
        assert isinstance(option.get("default"), Unsafe) == templated, (
            f"{spec_file}: {name}: ansible-core templates the spec itself, so a default "
            "that is a template must be `!unsafe` (and only such a default)"
        )
        assert " ".join(option["description"].split()) == notes[name], (
            f"{spec_file}: {name}: the description is not the comment above it in "
            f"{where(role, 'defaults/main.yml')}:\n{notes[name]}"
        )
        assert not option.get("required"), f"{spec_file}: {name} has a default"
    extra = sorted(set(options) - set(defaults))
    for name in extra:
        assert options[name].get("required") and "default" not in options[name], (
            f"{spec_file}: entry point 'main' has option {name}, which is neither a variable "
            f"of {where(role, 'defaults/main.yml')} nor required"
        )


def literal_defaults(option_specs: dict[str, dict]) -> dict[str, Any]:
    return {
        name: option["default"]
        for name, option in option_specs.items()
        if "default" in option and not isinstance(option["default"], Unsafe)
    }


@pytest.mark.parametrize("role", ROLES)
def test_the_options_of_every_entry_point_are_typed_and_their_defaults_pass(role: str) -> None:
    """A literal default passes its own type; an entry point other than main shares main's
    option for a role variable (a YAML alias), so they cannot differ."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    entries = specs(role)
    main = entries["main"]["options"]
    for entry, spec in entries.items():
        assert spec.get("short_description") and spec.get("description"), (role, entry)
        options = spec.get("options") or {}
        for name, option in options.items():
            assert option.get("type") and option.get("description"), (role, entry, name)
            assert "{" not in str(option["description"]), (role, entry, name)
            if name in main and "default" in main[name]:
                assert option is main[name], (
                    f"{where(role, 'meta/argument_specs.yml')}: entry point {entry!r}: "
                    f"{name} must be an alias of main's option (*{name})"
                )
        literal = literal_defaults(options)
        checked = {name: options[name] for name in literal}
        result = ArgumentSpecValidator(checked).validate(literal)
        assert not result.error_messages, (role, entry, result.error_messages)


def included_tasks(role: str, entry: str) -> list[Path]:
    """The task files an entry point runs: its own and those it includes or imports."""
    tasks = ROOT / "roles" / role / "tasks"
    files, queue = [], [tasks / f"{entry}.yml"]
    while queue:
        path = queue.pop()
        files.append(path)
        for name in re.findall(r"(?:include|import)_tasks: (\S+\.yml)", path.read_text()):
            queue.append(tasks / name)
    return files


def entry_points_used() -> set[tuple[str, str]]:
    """(role, tasks_from) of every role inclusion in the playbooks and the roles."""
    used = set()
    for path in [*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "roles").glob("*/tasks/*.yml")]:
        for item in re.finditer(
            r"(?:include|import)_role:\n\s+name: (\w+)(?:\n\s+tasks_from: (\w+))?", path.read_text()
        ):
            used.add((item.group(1), item.group(2) or "main"))
    for path in (ROOT / "playbooks").glob("*.yml"):
        used.update((role, "main") for role in re.findall(r"- role: (\w+)", path.read_text()))
    return used


def test_every_entry_point_the_playbooks_use_has_a_spec() -> None:
    used = entry_points_used()
    assert ("marteau_node", "job_user_remove") in used and ("marteau_bench", "main") in used
    for role, entry in sorted(used):
        assert entry in specs(role), (
            f"{where(role, 'meta/argument_specs.yml')}: no entry point {entry!r} "
            f"(included with tasks_from: {entry})"
        )
    for role in ROLES:
        for entry in specs(role):
            assert (ROOT / "roles" / role / "tasks" / f"{entry}.yml").is_file(), (role, entry)


@pytest.mark.parametrize("role", ROLES)
def test_each_entry_point_names_the_role_variables_its_tasks_read(role: str) -> None:
    defaults = set(load(ROOT / "roles" / role / "defaults" / "main.yml"))
    for entry, spec in specs(role).items():
        text = "".join(path.read_text() for path in included_tasks(role, entry))
        read = {name for name in re.findall(rf"\b{role}_\w+", text) if name in defaults}
        missing = sorted(read - set(spec.get("options") or {}))
        assert not missing, (
            f"{where(role, 'meta/argument_specs.yml')}: entry point {entry!r} reads "
            f"{', '.join(missing)} (see roles/{role}/tasks/{entry}.yml): add them as aliases"
        )


@pytest.mark.parametrize("role", ROLES)
def test_platforms_are_named_versions(role: str) -> None:
    meta = load(ROOT / "roles" / role / "meta" / "main.yml")
    platforms = meta["galaxy_info"]["platforms"]
    assert {p["name"] for p in platforms} >= {"Debian"}
    assert all(p["versions"] and "all" not in p["versions"] for p in platforms), platforms


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_names_every_variable_and_entry_point(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    for entry, spec in specs(role).items():
        for name in spec.get("options") or {}:
            assert f"`{name}`" in readme, f"{where(role, 'README.md')}: {name} is not described"
        if entry != "main":
            assert f"`{entry}`" in readme, f"{where(role, 'README.md')}: entry point {entry}"
    plays = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert plays, f"{where(role, 'README.md')}: no example play"
    for play in plays:
        assert role in play and isinstance(yaml.safe_load(play), list), play
    guide = (Path(__file__).parent.parent / "docs" / "ansible.md").read_text()
    assert f"../roles/{role}/README.md" in guide, f"docs/ansible.md does not link {role}'s README"


def test_ansible_doc_renders_every_role_entry_point() -> None:
    result = subprocess.run(
        [ANSIBLE_DOC, "-t", "role", "--roles-path", str(ROOT / "roles"), "--json", *ROLES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    for role in ROLES:
        entries = rendered[role]["entry_points"]
        assert set(entries) == set(specs(role)), role
        assert set(entries["main"]["options"]) == set(specs(role)["main"]["options"]), role


def module_files() -> list[Path]:
    return sorted((ROOT / "roles").glob("*/library/*.py"))


def argument_spec(path: Path) -> dict[str, dict]:
    """The module's `AnsibleModule(argument_spec={...})` literal; for the doc file of an
    action plugin, its `_VALID_ARGS` (each option then only named)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule":
            (spec,) = [k.value for k in node.keywords if k.arg == "argument_spec"]
            return ast.literal_eval(spec)
    plugin = path.parent.parent / "action_plugins" / path.name
    for node in ast.walk(ast.parse(plugin.read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_VALID_ARGS":
            return {name: {} for name in ast.literal_eval(node.value.args[0])}
    raise AssertionError(f"{path}: no argument_spec and no action plugin")


@pytest.mark.parametrize("path", module_files(), ids=lambda path: path.stem)
def test_ansible_doc_renders_the_module_as_its_argument_spec_takes(path: Path) -> None:
    result = subprocess.run(
        [ANSIBLE_DOC, "-M", str(path.parent), "--json", path.stem],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    rendered = json.loads(result.stdout)[path.stem]
    options = rendered["doc"]["options"]
    spec = argument_spec(path)
    assert set(options) == set(spec), f"{path}: documented {sorted(options)}, takes {sorted(spec)}"
    for name, taken in spec.items():
        for key in ("type", "default", "choices", "required", "elements"):
            if key in taken or (key == "required" and options[name].get("required")):
                assert options[name].get(key) == taken.get(key), (path.name, name, key)
    assert rendered["return"], f"{path}: no RETURN"
    examples = yaml.safe_load(rendered["examples"])
    used = [task for task in examples if path.stem in task]
    assert used, f"{path}: no example of {path.stem}"
    for task in used:
        assert set(task[path.stem]) <= set(options), (path.name, task)


def readme_play(role: str) -> str:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", readme, re.S)[0]


def ansible_playbook(tmp_path: Path, play: str, *args: str) -> subprocess.CompletedProcess:
    """Plain `ansible-playbook`, Marteau's roles on the roles path, the pool `hammers`
    being this machine."""
    (tmp_path / "play.yml").write_text(play)
    (tmp_path / "hosts.ini").write_text(
        f"[hammers]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [str(Path(sys.executable).with_name("ansible-playbook"))]
    command += ["-i", str(tmp_path / "hosts.ini"), str(tmp_path / "play.yml"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_play_passes_ansible_playbooks_syntax_check(tmp_path: Path, role: str) -> None:
    result = ansible_playbook(tmp_path, readme_play(role), "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lock_readme_play_runs_and_a_bad_value_is_refused_naming_it(tmp_path: Path) -> None:
    """The lock's example, run for real on this machine (its lock file and job users kept in
    tmp_path): the lock is taken and released; a TTL that is no number stops the role
    before its first task, naming the variable."""
    lock = tmp_path / "marteau" / "lock.json"
    where = ["-e", f"marteau_lock_path={lock}", "-e", f"marteau_node_dir={tmp_path / 'marteau'}"]
    result = ansible_playbook(tmp_path, readme_play("marteau_lock"), *where)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validating arguments against arg spec 'main'" in output
    assert "Validating arguments against arg spec 'release'" in output
    assert "'job': 'nightly-42'" in output or '"job": "nightly-42"' in output, output
    assert not lock.exists() and (tmp_path / "marteau" / "lock.json.flock").exists()
    refused = ansible_playbook(
        tmp_path, readme_play("marteau_lock"), *where, "-e", "marteau_lock_ttl=soon"
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and not lock.exists(), output
    assert "argument 'marteau_lock_ttl' is of type str" in output, output
