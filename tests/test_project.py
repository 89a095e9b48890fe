"""`.marteau.yml`: loading, validation with file/key/line, git URLs, wdir."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.orchestration import project
from marteau.orchestration.project import is_git_url, load_config, locate
from tests.git_http import processes_with
from tests.servers import HangingServer

GOOD = """\
name: MarketPlace
script: loadtest.py
test: MarketplaceTest.test_marketplace
xml: simple-bench.xml
nodes: 2
deps: [gevent]
cycles: 10:20
duration: 30
email: ops@example.com
pool: hammers
thresholds: thresholds.yml
lookup: [mod.fixtures]
fixtures:
  db: {class: DBFixture, arguments: {url: sqlite://}}
"""


def make(tmp_path: Path, text: str, files=("loadtest.py", "thresholds.yml")) -> Path:
    (tmp_path / ".marteau.yml").write_text(text)
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path / ".marteau.yml"


def test_every_key(tmp_path: Path) -> None:
    project = load_config(make(tmp_path, GOOD))
    assert project.name == "MarketPlace"
    assert (project.script, project.test, project.test_class) == (
        "loadtest.py",
        "MarketplaceTest.test_marketplace",
        "MarketplaceTest",
    )
    assert project.nodes == 2 and project.deps == ["gevent"]
    assert project.cycles == "10:20" and project.duration == 30
    assert project.pool == "hammers" and project.email == "ops@example.com"
    assert project.thresholds == tmp_path / "thresholds.yml"
    assert project.fixtures["db"]["class"] == "DBFixture"
    assert project.test_dir == tmp_path


def test_marteau_own_file_with_wdir(tmp_path: Path) -> None:
    text = "name: foo\ntest: StupidTest.test_simple\nscript: loadtest.py\nxml: simple-bench.xml\nwdir: marteau/tests\n"
    project = load_config(make(tmp_path, text, files=("marteau/tests/loadtest.py",)))
    assert project.test_dir == tmp_path / "marteau" / "tests"


def test_inline_thresholds_point_at_the_config_itself(tmp_path: Path) -> None:
    text = "script: loadtest.py\ntest: A.test_a\nthresholds:\n  global: [p95 < 0.5]\n"
    path = make(tmp_path, text)
    assert load_config(path).thresholds == path
    path.write_text("script: loadtest.py\ntest: A.test_a\nthresholds: 3\n")
    with pytest.raises(MarteauError, match=":3: key 'thresholds'"):
        load_config(path)


def test_rates_keep_their_text_and_refuse_zero(tmp_path: Path) -> None:
    path = make(tmp_path, "script: loadtest.py\ntest: A.test_a\nrates: 50:100.5\n")
    assert load_config(path).rates == "50:100.5"  # not YAML 1.1's base 60
    path.write_text("script: loadtest.py\ntest: A.test_a\nrates: 50:0\n")
    with pytest.raises(MarteauError, match=":3: key 'rates': expected tests per second"):
        load_config(path)


def test_integer_cycles_and_host_list(tmp_path: Path) -> None:
    text = "script: loadtest.py\ntest: A.test_a\ncycles: 5\nnodes: [n1, n2, n3]\n"
    project = load_config(make(tmp_path, text))
    assert project.cycles == "5" and project.nodes == 3 and project.hosts == ["n1", "n2", "n3"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("script: loadtest.py\ntest: A.test_a\nnodse: 2\n", ":3: unknown key 'nodse'"),
        ("script: loadtest.py\ntest: A.test_a\nnodes: two\n", ":3: key 'nodes': expected a number"),
        ("script: loadtest.py\ntest: A.test_a\nnodes: 0\n", ":3: key 'nodes'"),
        ("script: loadtest.py\n\n\ntest: A.test_a\nduration: true\n", ":5: key 'duration'"),
        ("script: loadtest.py\ntest: A.test_a\ndeps: gevent\n", ":3: key 'deps': expected a list"),
        ("script: loadtest.py\ntest: A.test_a\ncycles: 10-20\n", ":3: key 'cycles'"),
        ("script: loadtest.py\ntest: A.test_a\ncycles: '10:0'\n", ":3: key 'cycles'"),
        ("script: loadtest.py\ntest: test_a\n", ":2: key 'test': expected Class.method"),
        (
            f"script: loadtest.py\ntest: A.test_a\nname: {'x' * 256}\n",
            ":3: key 'name': at most 255",
        ),
        ("script: ../loadtest.py\ntest: A.test_a\n", ":1: key 'script'"),
        ("test: A.test_a\n", "missing required key 'script'"),
        ("script: loadtest.py\n", "missing required key 'test'"),
        ("script: loadtest.py\ntest: A.test_a\nscript: x.py\n", ":3: key 'script' given twice"),
        ("script: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", ":1: expected a mapping"),
        ("", "empty file"),
        ("script: missing.py\ntest: A.test_a\n", ":1: key 'script': "),
        ("script: loadtest.py\ntest: A.test_a\nwdir: nowhere\n", ":3: key 'wdir': "),
    ],
)
def test_errors_name_file_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = make(tmp_path, text)
    with pytest.raises(MarteauError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_locate_directory_and_missing_file(tmp_path: Path) -> None:
    make(tmp_path, "script: loadtest.py\ntest: A.test_a\n")
    assert locate(str(tmp_path)).root == tmp_path
    assert locate(str(tmp_path / ".marteau.yml")).root == tmp_path
    with pytest.raises(MarteauError, match="no .marteau.yml"):
        locate(str(tmp_path.parent))
    with pytest.raises(MarteauError, match="no such directory"):
        locate(str(tmp_path / "nope"))


def test_git_urls() -> None:
    assert is_git_url("https://github.com/mozilla/marketplace-loadtest.git")
    assert is_git_url("git@github.com:mozilla/marteau.git")
    assert is_git_url("file:///srv/repo")
    assert not is_git_url("some/dir")


def git(*argv: str, cwd: Path) -> None:
    subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True)


def test_git_url_cloned_then_updated(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    git("config", "user.email", "t@example.com", cwd=origin)
    git("config", "user.name", "t", cwd=origin)
    make(origin, "script: loadtest.py\ntest: A.test_a\nwdir: load\n", files=("load/loadtest.py",))
    git("add", "-A", cwd=origin)
    git("commit", "-qm", "one", cwd=origin)
    work = tmp_path / "work"
    url = f"file://{origin}"
    first = locate(url, work)
    assert first.test_dir.parent.parent == work and first.commit
    (origin / ".marteau.yml").write_text("script: loadtest.py\ntest: A.test_b\nwdir: load\n")
    git("commit", "-qam", "two", cwd=origin)
    second = locate(url, work)
    assert second.root == first.root and second.test == "A.test_b" and second.commit != first.commit
    with pytest.raises(MarteauError, match="git clone failed"):
        locate(f"file://{tmp_path}/nothing.git", work)


def test_a_git_url_that_never_answers_ends_with_its_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`marteau run URL`: the clone is bounded (CHECKOUT_SECONDS, shortened here) and
    its git processes, `git remote-http` included, end with it."""
    monkeypatch.setattr(project, "CHECKOUT_SECONDS", 2.0)
    with HangingServer() as server:
        url = server.url + "/project.git"
        with pytest.raises(MarteauError, match=r"project.git: git clone: not done within 2 s$"):
            locate(url, tmp_path / "work")
        assert processes_with(url) == {}


def test_monitor_hosts_or_map(tmp_path: Path) -> None:
    base = "script: loadtest.py\ntest: A.test_a\n"
    project = load_config(make(tmp_path, base + "monitor: [web1, db-1.lan]\n"))
    assert project.monitor is not None and project.monitor.hosts == ["web1", "db-1.lan"]
    assert project.monitor.interval == 1.0 and project.monitor.prometheus is None
    project = load_config(
        make(
            tmp_path,
            base + "monitor:\n  interval: 0.5\n  prometheus: http://127.0.0.1:9090\n"
            "  queries:\n    rps: sum(rate(http_requests_total[1m]))\n",
        )
    )
    assert project.monitor is not None and project.monitor.hosts == []
    assert project.monitor.interval == 0.5
    assert project.monitor.prometheus == "http://127.0.0.1:9090"
    assert project.monitor.queries == {"rps": "sum(rate(http_requests_total[1m]))"}
    assert load_config(make(tmp_path, base)).monitor is None


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        ("[web1, 'a b']", "hosts: expected a list of inventory host names"),
        ("[web1, '-x']", "hosts: expected a list of inventory host names"),
        ("{hosts: [w], every: 2}", "unknown key 'every'"),
        ("{interval: 0.01}", "interval: expected 0.1 to 3600 seconds"),
        (
            "{prometheus: 'file:///etc/passwd', queries: {a: up}}",
            "prometheus: expected an http(s) URL",
        ),
        ("{prometheus: 'http://u:p@h:9090', queries: {a: up}}", "without credentials"),
        ("{prometheus: 'http://h:9090'}", "prometheus needs queries"),
        ("{queries: {a: up}}", "queries need prometheus"),
        ("{prometheus: 'http://h:9090', queries: {'1a': up}}", "queries: '1a': a name"),
        ("{prometheus: 'http://h:9090', queries: {a: ''}}", "queries: a: empty"),
        ("web1", "key 'monitor': expected a list of inventory host names, or a map"),
    ],
)
def test_bad_monitor_names_the_key_and_line(tmp_path: Path, monitor: str, expected: str) -> None:
    path = make(tmp_path, f"script: loadtest.py\ntest: A.test_a\nmonitor: {monitor}\n")
    with pytest.raises(MarteauError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:3: key 'monitor'"), str(caught.value)
    assert expected in str(caught.value)
