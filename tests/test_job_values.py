"""Job values are data, end to end: `marteau run` on the embedded localhost node.

A hostile value (`{{ }}`, `{% %}`, `$( )`, backticks, `;`, quotes, a newline, 10 KB)
in any field is either refused with a message naming the field, or reaches the
node and the report as the text typed: no template is rendered and no command
runs (a marker file is never created)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LocalServer, ok
from tests.test_orchestration_nodes import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))


@pytest.fixture
def markers() -> Iterator[Path]:
    """A short directory for marker files (a label holds 200 characters)."""
    with tempfile.TemporaryDirectory(prefix="mk", dir="/tmp") as directory:
        yield Path(directory)


def hostile(markers: Path, field: str, space: str = " ") -> str:
    """Every way a value could be run, each creating its own marker if it is."""
    m = f"{markers}/{field}"
    return (
        f"{{{{lookup('pipe','touch{space}{m}1')}}}}"
        f"{{%if(lookup('pipe','touch{space}{m}2'))%}}{{%endif%}}"
        f"$(touch{space}{m}3)`touch{space}{m}4`;touch{space}{m}5;'\""
    )


def make_project(root: Path, url: str, **config: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "loadtest.py").write_text(TEST)
    (root / "Tiny.conf").write_text(CONF.format(url=url))
    lines = {"script": "loadtest.py", "test": "Tiny.test_get", "cycles": "1", "duration": "2"}
    lines.update(config)
    (root / ".marteau.yml").write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
    return root


def marteau_run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            MARTEAU,
            "run",
            *args,
            "--plain",
            "--lock-timeout",
            "900",
            "-e",
            "marteau_node_tune=false",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def quoted_yaml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


@pytest.mark.parametrize(
    ("field", "config", "args", "message"),
    [
        ("label newline", {}, ["-l", "a\nb"], "--label: control characters"),
        ("label 10 KB", {}, ["-l", "x" * 10240], "--label: at most 200 characters, got 10240"),
        ("deps option", {"deps": "['-r', '/etc/shadow']"}, [], "key 'deps': '-r': pip options"),
        (
            "deps index",
            {"deps": "\n  - requests\n  - --index-url=http://127.0.0.1:9/simple"},
            [],
            ":7: key 'deps': '--index-url=http://127.0.0.1:9/simple': pip options",
        ),
        (
            "deps URL",
            {"deps": "['x @ https://example.org/x.whl']"},
            [],
            "key 'deps': 'x @ https://example.org/x.whl': URLs are not accepted",
        ),
        ("deps path", {"deps": "[./vendor/x]"}, [], "key 'deps': './vendor/x': paths"),
        ("deps template", {"deps": "HOSTILE"}, [], "key 'deps': "),
        ("script", {"script": "HOSTILE"}, [], "key 'script': expected a file name"),
        ("name newline", {"name": quoted_yaml("a\nb")}, [], "key 'name': control characters"),
        ("name 10 KB", {"name": "n" * 10240}, [], "key 'name': at most 255 characters"),
        ("pool 10 KB", {"pool": "p" * 10240}, [], "key 'pool': at most 100 characters"),
        ("email", {"email": quoted_yaml("a@b\n$(id)")}, [], "key 'email': control characters"),
    ],
)
def test_a_hostile_value_is_refused_naming_its_field(
    tmp_path: Path, markers: Path, field: str, config: dict, args: list, message: str
) -> None:
    value = quoted_yaml(hostile(markers, "f"))
    config = {
        k: (f"[{value}]" if k == "deps" else value) if v == "HOSTILE" else v
        for k, v in config.items()
    }
    project = make_project(tmp_path / "project", "http://127.0.0.1:9", **config)
    result = marteau_run(tmp_path, str(project), *args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Error: " in result.stderr and message in result.stderr, result.stderr
    assert not list(markers.iterdir())
    assert not (tmp_path / "marteau-runs").exists()  # refused before anything ran


def test_hostile_values_reach_the_node_and_the_report_as_typed(
    tmp_path: Path, markers: Path
) -> None:
    label = hostile(markers, "l")
    owner = hostile(markers, "o")
    name = hostile(markers, "n")  # read by the controller only, never by Ansible
    seen: list[str] = []

    def root(request) -> object:  # type: ignore[no-untyped-def]
        seen.append(request.path)
        return ok("hello")

    with LocalServer(routes={"/": root}) as target:
        url = target.url + "/?q=" + hostile(markers, "u", space="${IFS}")
        # a few seconds: the bench may start late on a busy machine
        project = make_project(
            tmp_path / "project", target.url, name=quoted_yaml(name), duration="6"
        )
        result = marteau_run(
            tmp_path, str(project), "-l", label, "-u", url, "-e", f"marteau_owner={owner}"
        )
    output = result.stdout + result.stderr
    assert sorted(p.name for p in markers.iterdir()) == [], output
    assert result.returncode == 0, output
    run_dir = Path(
        next(x for x in result.stdout.splitlines() if x.startswith("Run directory: "))[15:]
    )
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["owner"] == owner
    (bench_log,) = (run_dir / "results").glob("*/bench.log")
    assert f"Label: {label}" in bench_log.read_text()
    assert f"Server: {url}" in bench_log.read_text()
    (index,) = (run_dir / "report").rglob("index.html")
    page = index.read_text()
    assert "<dd>{{lookup(" in page and "&#34;</dd>" in page  # escaped, not markup
    assert f"<dd>{label}</dd>" in html.unescape(page)
    assert url in html.unescape(page)
    assert seen, "the target got no request"
