"""The test suite's own rule: no module imports a test module. A helper two modules
share lives in tests/support (or tests/servers.py and its siblings), a shared fixture
in a tests/conftest*.py plugin; importing a test module instead hides what it shares,
and a fixture imported by name is easily lost to an "unused import" fix."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def is_test_module(name: str) -> bool:
    """`tests.test_x` (pytest's default `test_*.py` pattern, under tests/)."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[0] == "tests" and parts[-1].startswith("test_")


def imported_modules(path: Path, root: Path) -> Iterable[tuple[int, str]]:
    """(line, module) of every import in `path`, at any depth, relative ones resolved."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:  # `from tests import test_x`
                yield node.lineno, f"{module}.{alias.name}"


def imports_of_test_modules(root: Path) -> list[str]:
    """`file:line: module` for every import of a test module in tests/ and bench/."""
    found = []
    for folder in ("tests", "bench"):
        for path in sorted((root / folder).rglob("*.py")):
            for line, module in imported_modules(path, root):
                if is_test_module(module):
                    found.append(f"{path.relative_to(root)}:{line}: {module}")
    return sorted(found)


def test_no_module_imports_a_test_module(tmp_path: Path) -> None:
    # The check sees every spelling of such an import (so it can fail) ...
    b, c = "test_b", "test_c"  # not spelled out: the grep of the repository stays empty
    (tmp_path / "tests" / "support").mkdir(parents=True)
    (tmp_path / "bench").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(f"from tests.{b} import helper\n")
    (tmp_path / "tests" / "support" / "x.py").write_text(
        f"def f():\n    from ..{b} import helper\n"
    )
    (tmp_path / "bench" / "run.py").write_text(f"import tests.{b}\nfrom tests import {c}\n")
    (tmp_path / "tests" / "test_ok.py").write_text("from tests.support.x import f\n")
    assert imports_of_test_modules(tmp_path) == [
        "bench/run.py:1: tests.test_b",
        "bench/run.py:2: tests.test_c",
        "tests/support/x.py:2: tests.test_b",
        "tests/test_a.py:1: tests.test_b",
    ]
    # ... and finds none in this repository.
    assert imports_of_test_modules(ROOT) == []
