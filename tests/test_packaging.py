"""What the packaging promises: the node wheel names what the node code imports,
the wheelhouse's pins satisfy it, `python -m marteau`, `py.typed`, completion."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib import metadata
from importlib.resources import files
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import marteau
from marteau.orchestration.constraints import CONSTRAINTS, node_requirements, pins
from marteau.orchestration.prepare import CONTROLLER_ONLY, NODE_PACKAGES, build_node_wheel

ROOT = Path(marteau.__file__).resolve().parent.parent


def module_level_imports(tree: ast.Module) -> set[str]:
    """Top-level names imported when the module loads (not those inside functions,
    which the controller-side helpers of node modules import lazily)."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names


def test_the_node_requirements_cover_what_the_node_code_imports() -> None:
    distributions = metadata.packages_distributions()
    required = {canonicalize_name(Requirement(r).name) for r in node_requirements()}
    missing = {}
    for package in NODE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if any(relative.startswith(f"{part}/") for part in CONTROLLER_ONLY):
                continue
            for name in module_level_imports(ast.parse(path.read_text())):
                if name in sys.stdlib_module_names or name in NODE_PACKAGES:
                    continue
                owners = {canonicalize_name(d) for d in distributions.get(name, [name])}
                if not owners & required:
                    missing[relative] = name
    assert not missing, f"imported on the node but not in install_requires: {missing}"
    assert {"greenlet", "uvloop"} <= required  # the engine's hub imports both


def test_every_node_requirement_is_pinned_by_a_version_it_accepts() -> None:
    pinned = pins()
    assert "pip" in pinned, CONSTRAINTS
    assert node_requirements("monitor") == ["psutil>=5.9"]
    for line in node_requirements() + node_requirements("monitor"):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{CONSTRAINTS}: no pin for {line!r}: run `make constraints`"
        assert requirement.specifier.contains(pinned[name]), (
            f"{CONSTRAINTS}: {name}=={pinned[name]} does not satisfy {line!r}: "
            "run `make constraints`"
        )


def test_the_node_wheel_requires_the_node_requirements(tmp_path: Path) -> None:
    import zipfile

    wheel = build_node_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode()
    requires = [
        line[len("Requires-Dist: ") :] for line in text.splitlines() if "Requires-Dist" in line
    ]
    # psutil only for the monitored hosts: `pip install marteau[monitor]`
    monitor = [f'{r}; extra == "monitor"' for r in node_requirements("monitor")]
    assert requires == node_requirements() + monitor
    assert "Provides-Extra: monitor" in text.splitlines()
    assert not any(r.startswith(("numpy", "ansible", "rich")) for r in requires)


def test_python_dash_m_marteau_is_the_marteau_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "marteau", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"marteau, version {marteau.__version__}"


def test_the_package_says_it_is_typed() -> None:
    assert files("marteau").joinpath("py.typed").is_file()


def test_shell_completion_lists_the_subcommands() -> None:
    env = dict(
        os.environ, _MARTEAU_COMPLETE="bash_complete", COMP_WORDS="marteau ru", COMP_CWORD="1"
    )
    result = subprocess.run(
        [sys.executable, "-m", "marteau"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain,run"], result.stdout
