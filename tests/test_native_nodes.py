"""The compiled engine on real sshd nodes (tests/nodes.py): the wheelhouse carries it
and the nodes run it; a wheelhouse without it (a controller running the pure engine,
`MARTEAU_PURE=1`) leaves the nodes on the pure wheel, and the run's provenance says
so, node by node, with the reason each bench gave."""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
from pathlib import Path

import pytest

from marteau.results import load
from tests.nodes import NodeSet
from tests.servers import LocalServer, ok
from tests.support.node_runs import marteau_run, run_dir_of
from tests.support.projects import CONF, TEST


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        root = tmp_path_factory.mktemp("project")
        (root / "loadtest.py").write_text(TEST)
        (root / "Tiny.conf").write_text(CONF.format(url=target.url))
        (root / ".marteau.yml").write_text("name: Tiny\nscript: loadtest.py\ntest: Tiny.test_get\n")
        yield root


def controller_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MARTEAU_PURE"}
    return {**env, **changes}


def engine_of_run(
    project: Path, inventory: Path, cwd: Path, nodes: NodeSet, env: dict[str, str]
) -> dict:
    result = marteau_run(project, inventory, cwd, "--nodes", "3", "-c", "1", "-D", "1", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = run_dir_of(result.stdout)
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["completed"] == nodes.names()
    for name in nodes.names():  # either engine records the same way
        (path,) = (run_dir / "results" / name).glob("*.mrt")
        assert len(load(str(path)).responses) > 0, name
    return provenance["engine"]


def test_nodes_run_the_compiled_engine_else_the_pure_one_and_say_why(
    nodes: NodeSet, inventory: Path, project: Path, tmp_path: Path
) -> None:
    pure = engine_of_run(
        project, inventory, tmp_path / "pure", nodes, controller_env(MARTEAU_PURE="1")
    )
    assert pure["wheelhouse"] == "pure: MARTEAU_PURE is set"
    why = (
        f"pure: no compiled modules for this interpreter ({sys.implementation.cache_tag}, "
        f"{importlib.machinery.EXTENSION_SUFFIXES[0]})"
    )
    assert pure["nodes"] == {name: why for name in nodes.names()}

    compiled = engine_of_run(project, inventory, tmp_path / "compiled", nodes, controller_env())
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert compiled["wheelhouse"].startswith(f"{python}-{python}-linux_")
    assert compiled["nodes"] == {name: "compiled" for name in nodes.names()}
