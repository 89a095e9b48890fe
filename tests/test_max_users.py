"""`--max-users`: the node caps the users of every cycle, whatever the conf or the
test's own code asks (a quota the service passes; the test cannot raise it)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.servers import LocalServer, ok
from tests.support.projects import GREEDY_CONF

MARTEAU = str(Path(sys.executable).with_name("marteau"))
REPO = Path(__file__).resolve().parents[1]

# The conf asks 2 users; the test's conf_get override asks 12 (attack 7 of issue 11).
GREEDY_TEST = """
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Greedy(FunkLoadTestCase):
    def conf_get(self, section, key, *args, **kwargs):
        if (section, key) == ("bench", "cycles"):
            return "12"
        return super().conf_get(section, key, *args, **kwargs)

    def test_get(self):
        self.get(self.conf_get("main", "url") + "/", description="Home")
"""


def write_greedy(folder: Path, url: str) -> None:
    (folder / "greedy.py").write_text(GREEDY_TEST)
    (folder / "Greedy.conf").write_text(GREEDY_CONF.format(url=url))


def threads_of(xml: Path) -> set[int]:
    root = ET.parse(xml).getroot()
    return {int(r.get("thread")) for r in root.iter("response")}


@pytest.mark.parametrize(("max_users", "workers"), [(None, "1"), (5, "1"), (5, "2")])
def test_a_test_asking_12_users_under_a_quota_of_5_runs_5(
    tmp_path: Path, max_users: int | None, workers: str
) -> None:
    with LocalServer(routes={"/": lambda request: ok("home")}) as target:
        write_greedy(tmp_path, target.url)
        command = [MARTEAU, "bench", "greedy.py", "Greedy.test_get", "--workers", workers]
        command += ["--max-users", str(max_users)] if max_users else []
        run = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
            env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
        )
    assert run.returncode == 0, run.stdout + run.stderr
    root = ET.parse(tmp_path / "bench.xml").getroot()
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    if max_users is None:  # the override works: without a quota, 12 users
        assert threads_of(tmp_path / "bench.xml") == set(range(12))
        assert config["cycles"] == "[12]" and "marteau:max_users" not in config
        return
    assert threads_of(tmp_path / "bench.xml") == set(range(5))
    assert {int(r.get("cvus")) for r in root.iter("response")} == {5}
    assert config["cycles"] == "[5]"
    assert (config["marteau:max_users"], config["marteau:cycles_asked"]) == ("5", "[12]")
    assert "* Cycles: [5] (asked [12], cut by --max-users 5)" in run.stdout
    assert "* Max users: the cycle asks 12 users, --max-users 5 runs 5" in run.stdout
