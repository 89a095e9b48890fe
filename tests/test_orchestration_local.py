"""`marteau run` on the embedded default: this machine is the only node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marteau.orchestration import content_dir
from tests.servers import LocalServer, ok
from tests.support.projects import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))


@pytest.mark.parametrize("output", ["--plain", "--json"])
def test_run_without_inventory_benches_this_machine(tmp_path: Path, output: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        (project / "loadtest.py").write_text(TEST)
        (project / "Tiny.conf").write_text(CONF.format(url=target.url))
        (project / ".marteau.yml").write_text(
            "script: loadtest.py\ntest: Tiny.test_get\ncycles: 2\nduration: 3\n"
            "thresholds:\n  global: [count > 1000000000]\n"
        )
        result = subprocess.run(
            # No system tuning: this is a developer's or CI's own machine.
            [MARTEAU, "run", str(project), output, "-e", "marteau_node_tune=false"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            env=dict(os.environ, HOME=os.environ.get("HOME", "/root")),
        )
        requests = len(target.requests)
    # The bench ran and the report was built, but the (impossible) threshold failed.
    assert result.returncode == 1, result.stdout + result.stderr
    if output == "--json":  # progress on stderr, one object on stdout
        assert "thresholds violated" in result.stderr
        outcome = json.loads(result.stdout)
        assert outcome["exit_status"] == 1 and outcome["completed"] == ["localhost"]
        assert outcome["report"].endswith("index.html") and not outcome["lost"]
        assert outcome["totals"]["requests"] > 0 and outcome["totals"]["requests_error"] == 0
        assert json.loads(Path(outcome["summary"]).read_text())["totals"] == outcome["totals"]
        return
    assert "thresholds violated" in result.stdout
    run_dir = Path(
        next(x for x in result.stdout.splitlines() if x.startswith("Run directory: ")).split(": ")[
            1
        ]
    )
    provenance = json.loads((run_dir / "run.json").read_text())
    assert provenance["nodes"] == ["localhost"] and provenance["completed"] == ["localhost"]
    assert provenance["inventory"].startswith("embedded default")
    assert (run_dir / "inventory.ini").read_text() == (
        content_dir() / "inventory" / "localhost.ini"
    ).read_text()
    (summary,) = (run_dir / "report").rglob("summary.json")
    assert 0 < json.loads(summary.read_text())["totals"]["requests"] <= requests
    assert "Report: " in result.stdout
    assert " requests (0 errors), " in result.stdout and "on 1 node(s)" in result.stdout
    assert list((run_dir / "report").rglob("junit.xml"))
