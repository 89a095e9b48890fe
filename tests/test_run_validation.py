"""`marteau run` refuses bad input before any lock: exit 2, a message naming file, key and line.

Each case runs the real command. Nothing may be locked, provisioned or
deployed: the runs directory (made when the run prepares its first playbook)
must not exist afterwards. The inventory's hosts do not exist: a run that got
past the checks would fail on them, not exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MARTEAU = str(Path(sys.executable).with_name("marteau"))

TEST = """\
from funkload.FunkLoadTestCase import FunkLoadTestCase


class Tiny(FunkLoadTestCase):
    def test_get(self):
        self.get(self.conf_get("main", "url") + "/")
"""
CONF = "[main]\ntitle=Tiny\nurl={url}\n\n[bench]\ncycles = 1\nduration = 1\n"
INVENTORY = "[hammers]\nhammer1.invalid\nhammer2.invalid\n\n[spot]\nspot1.invalid\n"


def project(tmp_path: Path, config: str, test: str = TEST, conf: str | None = None) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".marteau.yml").write_text(config)
    (root / "loadtest.py").write_text(test)
    if conf is not None:
        (root / "Tiny.conf").write_text(conf)
    (tmp_path / "lab.ini").write_text(INVENTORY)
    return root


def run(tmp_path: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [MARTEAU, "run", str(root), "-i", str(tmp_path / "lab.ini"), "--plain"]
    command += ["--runs-dir", str(tmp_path / "runs"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def refused(result: subprocess.CompletedProcess[str], tmp_path: Path) -> str:
    """The error line of a run refused as bad input before anything was locked."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert not (tmp_path / "runs").exists(), "the run went on after bad input"
    assert "has no attribute" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    return line


GOOD_CONF = CONF.format(url="http://127.0.0.1:9")
YML = "script: loadtest.py\ntest: {test}\npool: hammers\n"


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("Nope.test_get", "key 'test': {root}/loadtest.py has no class 'Nope' (its classes: Tiny)"),
        (
            "Tiny.test_nope",
            "key 'test': class Tiny ({root}/loadtest.py:4) has no method 'test_nope' "
            "(its test methods: test_get)",
        ),
    ],
)
def test_a_missing_class_or_method_names_the_key_and_line(
    tmp_path: Path, test: str, expected: str
) -> None:
    root = project(tmp_path, YML.format(test=test), conf=GOOD_CONF)
    line = refused(run(tmp_path, root), tmp_path)
    assert line == f"Error: {root}/.marteau.yml:2: " + expected.format(root=root)


def test_a_method_inherited_in_the_module_passes_and_the_pool_is_checked(tmp_path: Path) -> None:
    inherited = TEST.replace("class Tiny(FunkLoadTestCase)", "class Base(FunkLoadTestCase)")
    inherited += "\n\nclass Tiny(Base):\n    pass\n"
    root = project(tmp_path, YML.format(test="Tiny.test_get"), inherited, GOOD_CONF)
    line = refused(run(tmp_path, root, "--nodes", "3"), tmp_path)
    assert line == (
        f"Error: {root}/.marteau.yml:3: key 'pool': pool 'hammers' of {tmp_path}/lab.ini "
        "has 2 host(s), 3 wanted"
    )


def test_a_base_from_another_module_is_a_warning_not_a_guess(tmp_path: Path) -> None:
    imported = "from common import Base\n\n\nclass Tiny(Base):\n    pass\n"
    root = project(tmp_path, YML.format(test="Tiny.test_get"), imported, GOOD_CONF)
    result = run(tmp_path, root, "--pool", "nowhere")
    line = refused(result, tmp_path)
    assert (
        f"warning: {root}/.marteau.yml:2: key 'test': cannot tell whether Tiny.test_get exists: "
        "Tiny inherits from Base, defined outside loadtest.py; the bench will say"
    ) in result.stdout
    assert line == (
        f"Error: --pool: no group 'nowhere' in the inventory {tmp_path}/lab.ini "
        "(its groups: hammers, spot)"
    )


def test_a_syntax_error_names_the_script_line(tmp_path: Path) -> None:
    broken = TEST.replace("def test_get(self):", "def test_get(self)")
    root = project(tmp_path, YML.format(test="Tiny.test_get"), broken, GOOD_CONF)
    assert refused(run(tmp_path, root), tmp_path).startswith(
        f"Error: {root}/loadtest.py:5: syntax error: "
    )


def test_bad_input_with_json_output_is_an_error_object(tmp_path: Path) -> None:
    broken = TEST.replace("def test_get(self):", "def test_get(self)")
    root = project(tmp_path, YML.format(test="Tiny.test_get"), broken, GOOD_CONF)
    result = run(tmp_path, root, "--json")
    line = refused(result, tmp_path)
    assert json.loads(result.stdout) == {"error": line, "exit_status": 2}


def test_a_missing_or_broken_conf(tmp_path: Path) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get"))
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/.marteau.yml:2: key 'test': {root}/Tiny.conf does not exist "
        "(the test's configuration: Tiny.conf beside loadtest.py)"
    )
    (root / "Tiny.conf").write_text("url = http://127.0.0.1:9\n[main]\n")
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/Tiny.conf:1: cannot parse configuration: no [section] header before "
        "'url = http://127.0.0.1:9\\n'"
    )


@pytest.mark.parametrize("url", ["localhost:8080", "http://", "ftp://127.0.0.1/"])
def test_a_url_without_scheme_or_host(tmp_path: Path, url: str) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get"), conf=GOOD_CONF)
    assert refused(run(tmp_path, root, "-u", url), tmp_path) == (
        f"Error: -u/--url: {url!r}: expected an http:// or https:// URL with a host, "
        "such as http://localhost:8080"
    )


def test_the_conf_url_is_checked_with_its_line(tmp_path: Path) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get"), conf=CONF.format(url="shop:8080"))
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/Tiny.conf:3: [main] url: 'shop:8080': expected an http:// or https:// "
        "URL with a host, such as http://localhost:8080"
    )


def test_a_pool_missing_from_the_inventory_or_named_nodes_outside_it(tmp_path: Path) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get"), conf=GOOD_CONF)
    (root / ".marteau.yml").write_text(YML.format(test="Tiny.test_get").replace("hammers", "hams"))
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/.marteau.yml:3: key 'pool': no group 'hams' in the inventory "
        f"{tmp_path}/lab.ini (its groups: hammers, spot)"
    )
    (root / ".marteau.yml").write_text(
        YML.format(test="Tiny.test_get") + "nodes: [hammer1.invalid, spot1.invalid]\n"
    )
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/.marteau.yml:4: key 'nodes': spot1.invalid not in pool 'hammers' of "
        f"{tmp_path}/lab.ini (its hosts: hammer1.invalid, hammer2.invalid)"
    )


def test_the_lock_playbook_says_a_pool_is_empty_without_a_template_error(tmp_path: Path) -> None:
    """The plain `ansible-playbook` path has no up-front check: its own message must be clear."""
    from marteau.orchestration.driver import Ansible

    variables = {"marteau_job": "j1", "marteau_owner": "t@h", "marteau_pool": "hammers"}
    result = Ansible(tmp_path / "run").play("lock", {**variables, "marteau_nodes": 1})
    assert not result.ok
    assert result.failure_messages() == {
        "localhost": "Fail when too few nodes are free: "
        "wanted 1 free node(s) of pool hammers, got 0; held:"
    }


def test_an_oversized_conf_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get"), conf=GOOD_CONF + "#" * 2**21)
    assert refused(run(tmp_path, root), tmp_path) == (
        f"Error: {root}/Tiny.conf: over 1048576 bytes, not a FunkLoad configuration"
    )


WITHOUT_RATES = (
    " without rates: it only applies to the open model; give --rates, `rates` in "
    "{root}/.marteau.yml or [bench] rates in Tiny.conf, or leave it out"
)


@pytest.mark.parametrize(
    ("args", "yml", "given"),
    [
        (("--arrivals", "poisson"), "", "--arrivals"),
        (("--ramp", "0"), "", "--ramp"),
        ((), "arrivals: constant\n", "{root}/.marteau.yml:4: key 'arrivals'"),
        ((), "ramp: 5\n", "{root}/.marteau.yml:4: key 'ramp'"),
    ],
)
def test_arrivals_or_ramp_without_rates_is_refused(
    tmp_path: Path, args: tuple[str, ...], yml: str, given: str
) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get") + yml, conf=GOOD_CONF)
    assert refused(run(tmp_path, root, *args), tmp_path) == (
        "Error: " + (given + WITHOUT_RATES).format(root=root)
    )


@pytest.mark.parametrize(
    ("yml", "expected"),
    [
        ("arrivals: sometimes", "expected constant or poisson (with rates), got 'sometimes'"),
        ("ramp: -1", "expected seconds of ramp before each window, a number >= 0 (with rates)"),
        ("ramp: .nan", "expected seconds of ramp before each window"),
        ("ramp: '5'", "expected seconds of ramp before each window"),
    ],
)
def test_bad_arrivals_or_ramp_in_the_project_name_the_key(
    tmp_path: Path, yml: str, expected: str
) -> None:
    root = project(tmp_path, YML.format(test="Tiny.test_get") + f"rates: 10\n{yml}\n", GOOD_CONF)
    line = refused(run(tmp_path, root), tmp_path)
    key = yml.split(":")[0]
    assert line.startswith(f"Error: {root}/.marteau.yml:5: key '{key}': {expected}"), line


def test_arrivals_and_ramp_pass_with_rates_from_any_place(tmp_path: Path) -> None:
    """Rates from --rates, `rates:` or the test's .conf (the nodes read it) all count."""
    from marteau.errors import MarteauError
    from marteau.orchestration.project import locate
    from marteau.orchestration.run import RunOptions, check_open_model

    yml = YML.format(test="Tiny.test_get") + "arrivals: poisson\nramp: 2\n"
    root = project(tmp_path, yml, conf=GOOD_CONF.replace("cycles = 1", "rates = 20"))
    located = locate(str(root))
    assert (located.arrivals, located.ramp) == ("poisson", 2)
    check_open_model(RunOptions(), located, None)  # the .conf's [bench] rates
    (root / "Tiny.conf").write_text(GOOD_CONF)
    check_open_model(RunOptions(), located, "20")  # --rates or `rates:`
    with pytest.raises(MarteauError, match="key 'arrivals' without rates"):
        check_open_model(RunOptions(), located, None)
