"""Job values are data, end to end: `marteau run` on the embedded localhost node.

A hostile value (`{{ }}`, `{% %}`, `$( )`, backticks, `;`, quotes, a newline, 10 KB)
in any field is either refused with a message naming the field, or reaches the
node and the report as the text typed: no template is rendered and no command
runs (a marker file is never created)."""

from __future__ import annotations

import html
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LocalServer, ok
from tests.support.node_runs import ansible_env
from tests.support.projects import CONF, TEST

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
            "240",
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


@pytest.mark.timeout(420)  # the localhost node may be busy: its lock is waited for
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


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`marteau serve` (uvicorn, one worker) whose jobs run the real `marteau run`
    on its default node, this machine."""
    pytest.importorskip("fastapi")
    from tests.service_helpers import MARTEAU as PYTHON_MARTEAU
    from tests.service_helpers import Service

    base = tmp_path_factory.mktemp("service")
    run = shlex.join([*PYTHON_MARTEAU, "run", "-e", "marteau_node_tune=false"])
    options = ("--run-command", run, "--lock-timeout", "300")
    svc = Service(base / "data", base / "locks", workers=1, options=options)
    yield svc
    svc.stop()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("label", "a\nb", "label: control characters"),
        ("label", "x" * 10240, "label: at most 200 characters, got 10240"),
        ("url", "http://127.0.0.1/\n$(id)", "url: control characters"),
        ("url", "http://127.0.0.1/" + "u" * 10240, "url: at most 2000 characters"),
        ("script", "HOSTILE", "script "),
        ("test", "HOSTILE", "test "),
        ("cycles", "HOSTILE", "cycles "),
        ("pool", "HOSTILE", "pool "),
        ("ref", "HOSTILE", "ref "),
        ("git_url", "HOSTILE", "expected an http(s), ssh or git URL"),
    ],
)
@pytest.mark.parametrize("route", ["api", "upload"])
def test_the_service_refuses_a_hostile_value_naming_its_field(
    admin, tmp_path: Path, markers: Path, route: str, field: str, value: str, message: str
) -> None:
    from tests.service_helpers import tar_of

    if value == "HOSTILE":
        value = hostile(markers, "s")
    project = make_project(tmp_path / "project", "http://127.0.0.1:9")
    if route == "api":
        source = {"git_url": value} if field == "git_url" else {"path": str(project), field: value}
        answer = admin.post("/api/jobs", json=source)
    elif field in ("git_url", "ref"):
        pytest.skip("an upload has no git URL")
    else:
        answer = admin.post(
            "/api/jobs/upload",
            files={"archive": ("project.tar.gz", tar_of(project), "application/gzip")},
            data={field: value},
        )
    if answer.status_code == 422:  # the API schema's own bound, naming the field
        assert answer.json()["detail"][0]["loc"] == ["body", field], answer.text
    else:
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["detail"]
    assert not list(markers.iterdir())


@pytest.mark.timeout(420)  # the localhost node may be busy: its lock is waited for
def test_the_service_runs_hostile_values_as_typed(
    service, admin, tmp_path: Path, markers: Path
) -> None:
    from tests.service_helpers import wait_job

    label = hostile(markers, "l")
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        url = target.url + "/?q=" + hostile(markers, "u", space="${IFS}")
        project = make_project(tmp_path / "project", target.url, duration="6")
        created = admin.post("/api/jobs", json={"path": str(project), "label": label, "url": url})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        job = wait_job(admin, job_id, timeout=360)
        requests = len(target.requests)
    console = admin.get(f"/api/jobs/{job_id}/console").text
    assert sorted(p.name for p in markers.iterdir()) == [], console
    assert job["state"] == "succeeded", console
    assert shlex.join(["-l", label]) in console and shlex.join(["-u", url]) in console
    assert requests > 0
    (index,) = (service.data_dir / "jobs" / str(job_id) / "report").rglob("index.html")
    assert f"<dd>{label}</dd>" in html.unescape(index.read_text())


@pytest.mark.parametrize("driver", ["marteau run", "ansible-playbook loadtest.yml"])
def test_hostile_node_names_are_shown_as_typed(tmp_path: Path, markers: Path, driver: str) -> None:
    """`nodes: [names]` of `.marteau.yml` reach the lock play (through the driver's
    extra vars, or the prepare play's file) and its message as typed."""
    from marteau.orchestration import content_dir

    name = hostile(markers, "n")
    project = make_project(
        tmp_path / "project", "http://127.0.0.1:9", nodes=f"[{json.dumps(name)}]"
    )
    if driver == "marteau run":
        result = marteau_run(tmp_path, str(project), timeout=240)
        assert result.returncode == 2, result.stdout + result.stderr
    else:
        command = ["ansible-playbook", "-i", str(content_dir() / "inventory" / "localhost.ini")]
        command += [str(content_dir() / "playbooks" / "loadtest.yml")]
        command += ["-e", f"marteau_project={project}", "-e", f"marteau_run_dir={tmp_path / 'run'}"]
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=ansible_env()
        )
        assert result.returncode != 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert sorted(p.name for p in markers.iterdir()) == [], output
    if driver == "marteau run":  # checked before any lock, naming the file and key
        assert f"key 'nodes': {name} not in pool 'marteau'" in output
    else:  # the lock play's own check
        assert f"not in pool marteau of the inventory: {name}" in output.replace('\\"', '"')


def test_extra_vars_keep_their_text_through_ansible(tmp_path: Path, markers: Path) -> None:
    """The driver's extra-vars file, read by a real `ansible-playbook`: values that YAML 1.1
    would take for numbers or booleans stay the text typed, and a template stays text."""
    from marteau.orchestration import inert

    values = {"cycles": "1:2", "answer": "yes", "octal": "010", "hexa": "0x10", "tilde": "~"}
    values["template"] = hostile(markers, "v")
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        f"        dest: {tmp_path / 'seen.json'}\n"
        "        content: '{{ {"
        + ", ".join(f'"{name}": {name} | string' for name in values)
        + "} | to_json }}'\n"
        "        mode: '0600'\n"
    )
    extra = inert.write(values, tmp_path / "extravars.yml")
    command = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)]
    command += ["-e", f"ansible_python_interpreter={sys.executable}"]
    result = subprocess.run(
        [*command, "-e", f"@{extra}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ansible_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == values
    assert not list(markers.iterdir())
