"""The compiled engine (marteau/native.py): the build compiles it, `MARTEAU_PURE=1` and a
stale build run the source, and the node wheels carry one engine each.

Each case runs a fresh interpreter: which module files a process imports is decided
once, when `marteau` is first imported. The project's build (`make .venv/.installed`)
compiles the engine; a source tree built with ``MARTEAU_PURE_BUILD=1`` fails here.
"""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from marteau import native

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
PROBE = """
import json, marteau.native as native
import marteau.engine.http, marteau.funkload.browser
print(json.dumps({"engine": native.describe(),
                  "files": [marteau.engine.http.__file__, marteau.funkload.browser.__file__]}))
"""


def probe(env: dict[str, str], cwd: Path = ROOT) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def environment(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MARTEAU_PURE", "PYTHONPATH")}
    return {**env, **changes}


def test_the_build_compiles_the_engine_and_a_process_runs_it() -> None:
    seen = probe(environment())
    assert seen["engine"] == "compiled"
    assert all(path.endswith(SUFFIX) for path in seen["files"]), seen


def test_marteau_pure_runs_the_source_and_says_why() -> None:
    seen = probe(environment(MARTEAU_PURE="1"))
    assert seen["engine"] == "pure: MARTEAU_PURE is set"
    assert all(path.endswith(".py") for path in seen["files"]), seen
    assert probe(environment(MARTEAU_PURE="0"))["engine"] == "compiled"


def test_an_extension_older_than_its_source_is_not_run(tmp_path: Path) -> None:
    """An edit after the build must not be silently ignored (the source tree's rule)."""
    shutil.copytree(ROOT / "marteau", tmp_path / "marteau", symlinks=True)
    for library in ROOT.glob(f"{native.GROUP}__mypyc*{SUFFIX}"):
        shutil.copy2(library, tmp_path)
    shutil.copy2(ROOT / "setup.py", tmp_path)
    source = tmp_path / "marteau" / "funkload" / "browser.py"
    later = (tmp_path / "marteau" / "funkload" / f"browser{SUFFIX}").stat().st_mtime + 10
    os.utime(source, (later, later))
    seen = probe(environment(PYTHONPATH=str(tmp_path)), cwd=tmp_path)
    assert seen["engine"] == (
        "pure: marteau.funkload.browser's compiled module is older than its source (rebuild: make)"
    )
    assert all(path.startswith(str(tmp_path)) and path.endswith(".py") for path in seen["files"])


def build_wheels(directory: Path, env: dict[str, str]) -> tuple[Path, Path | None, str]:
    """Both node wheels, built by a controller process with this environment."""
    code = (
        "import json, sys, pathlib\n"
        "from marteau.orchestration.prepare import build_compiled_wheel, build_node_wheel\n"
        "target = pathlib.Path(sys.argv[1])\n"
        "wheel, tag = build_compiled_wheel(target)\n"
        "print(json.dumps([str(build_node_wheel(target)), wheel and str(wheel), tag]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pure, compiled, tag = json.loads(result.stdout)
    return Path(pure), Path(compiled) if compiled else None, tag


def test_the_node_wheels_one_pure_one_compiled_for_this_python(tmp_path: Path) -> None:
    pure, compiled, tag = build_wheels(tmp_path, environment())
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert compiled is not None and tag.startswith(f"{python}-{python}-linux_")
    assert compiled.name == f"marteau-{pure.name.split('-')[1]}-{tag}.whl"
    with zipfile.ZipFile(pure) as wheel:
        pure_names = set(wheel.namelist())
        assert "Root-Is-Purelib: true" in wheel.read(_dist(pure_names, "WHEEL")).decode()
    with zipfile.ZipFile(compiled) as wheel:
        names = set(wheel.namelist())
        header = wheel.read(_dist(names, "WHEEL")).decode()
        top_level = wheel.read(_dist(names, "top_level.txt")).decode().split()
    assert not [n for n in pure_names if n.endswith((".so", ".pyd"))]
    extensions = {n.replace("/", ".")[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX)}
    assert extensions == {*native.COMPILED, f"{native.GROUP}__mypyc"}
    assert f"Tag: {tag}" in header and "Root-Is-Purelib: false" in header
    assert f"{native.GROUP}__mypyc" in top_level
    # the same sources in both, so that the pure modules are the compiled one's fallback
    assert {n for n in names if not n.endswith(SUFFIX)} == pure_names


def test_a_pure_controller_ships_no_compiled_wheel_and_says_why(tmp_path: Path) -> None:
    pure, compiled, why = build_wheels(tmp_path, environment(MARTEAU_PURE="1"))
    assert (compiled, why) == (None, "pure: MARTEAU_PURE is set")
    assert list(tmp_path.iterdir()) == [pure]


def mypyc_pitfalls(source: str, name: str) -> list[str]:
    """What mypyc (2.4) compiles otherwise than Python runs it: ``raise ... from ...``
    loses its cause (`marteau.engine.http_error.caused_by` sets it), and a call in a
    slice's bounds is made twice."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.cause is not None:
            found.append(f"{name}:{node.lineno}: raise ... from")
        if isinstance(node, ast.Slice):
            bounds = [b for b in (node.lower, node.upper, node.step) if b is not None]
            if any(isinstance(n, ast.Call) for b in bounds for n in ast.walk(b)):
                found.append(f"{name}:{node.lineno}: a call in a slice")
    return found


def test_the_compiled_modules_avoid_what_mypyc_compiles_otherwise() -> None:
    # the check sees both (so it can fail) ...
    bad = "try:\n    x = v[s.send(v):]\nexcept E as e:\n    raise F() from e\n"
    assert sorted(mypyc_pitfalls(bad, "m")) == ["m:2: a call in a slice", "m:4: raise ... from"]
    # ... and the compiled modules have neither
    found = []
    for name in native.COMPILED:
        path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
        found += mypyc_pitfalls(path.read_text(), name)
    assert found == []


def test_caused_by_is_raise_from() -> None:
    from marteau.engine.http_error import caused_by

    for cause in (ValueError("inner"), None):
        try:
            try:
                raise KeyError("context")
            except KeyError:
                raise caused_by(OSError("outer"), cause)  # noqa: B904 - what is tested
        except OSError as error:
            assert error.__cause__ is cause and error.__suppress_context__
            assert isinstance(error.__context__, KeyError)


def _dist(names: set[str], leaf: str) -> str:
    (name,) = [n for n in names if n.endswith(f".dist-info/{leaf}")]
    return name
