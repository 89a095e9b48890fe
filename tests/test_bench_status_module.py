"""The `marteau_bench_status` module on the log of a real `marteau bench`: every second's
progress line reaches the controller, and a bench that failed says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from marteau.orchestration import content_dir
from tests.servers import LocalServer, ok
from tests.support.projects import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))
MODULE = content_dir() / "roles" / "marteau_bench" / "library" / "marteau_bench_status.py"


def bench(tmp_path: Path, url: str, test: str) -> tuple[int, Path]:
    """Run a real bench with its console in a file (as on a node); its exit and its log."""
    (tmp_path / "loadtest.py").write_text(TEST)
    (tmp_path / "Tiny.conf").write_text(
        CONF.format(url=url).replace("duration = 2", "duration = 3")
    )
    log = tmp_path / "bench.log"
    with open(log, "w") as out:
        code = subprocess.run(
            [MARTEAU, "bench", "loadtest.py", test, "--workers", "1"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        ).returncode
    return code, log


def status(tmp_path: Path, log: Path, job: dict) -> dict:
    """Run the module as Ansible does (its arguments in a file), on an async job file."""
    async_dir = tmp_path / "async"
    async_dir.mkdir(exist_ok=True)
    (async_dir / "42.1").write_text(json.dumps(job))
    args = tmp_path / "args.json"
    params = {"jid": "42.1", "log": str(log), "async_dir": str(async_dir)}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    result = subprocess.run(
        [sys.executable, str(MODULE), str(args)], capture_output=True, text=True, timeout=60
    )
    return json.loads(result.stdout)


def test_every_progress_line_and_the_last_of_each_cycle(tmp_path: Path) -> None:
    with LocalServer(routes={"/": lambda request: ok("hello")}) as target:
        code, log = bench(tmp_path, target.url, "Tiny.test_get")
    assert code == 0, log.read_text()
    text = log.read_text()
    printed = [line.strip() for line in text.splitlines() if line.strip().startswith("cycle #")]
    results = [line for line in text.splitlines() if line.startswith("* Cycle result: ")]
    assert len(printed) >= 6 and len(results) == 2, text
    # the async wrapper's file once the command ended: the shell module's result
    result = status(tmp_path, log, {"changed": True, "rc": 0, "cmd": "marteau bench ..."})
    assert result["finished"] == 1 and not result.get("failed")
    lines = result["lines"]
    offsets = [line["at"] for line in lines]
    assert offsets == sorted(set(offsets))
    # the last ten lines: what the bench printed each second, and each cycle's result
    recent = [x for x in lines if x["phase"] != "done"]
    assert [x["ok"] for x in recent[-3:]] == [
        int(p.split("tests ")[1].split(" ok")[0]) for p in printed[-3:]
    ]
    # the responses and quantiles at the line's end, the quantiles in seconds
    assert [x["responses"] for x in recent[-3:]] == [
        int(p.split(" responses")[0].split()[-1]) for p in printed[-3:]
    ]
    timed = [x for x in recent if x["p50"] is not None]
    assert timed, printed
    for x in timed:
        assert 0 < x["p50"] <= x["p95"] <= x["p99"] < 10, x
    done = [x for x in lines if x["phase"] == "done"]
    assert [x["cycle"] for x in done] == [0, 1]
    for found, line in zip(done, results, strict=True):
        assert text[: found["at"]].rstrip().endswith(line)
        assert f", {found['ok']} success, {found['failures']} failure, " in line
        assert found["ok"] > 0 and found["users"] == found["cycle_users"] == found["cycle"] + 1
    assert result["progress"] == {k: v for k, v in lines[-1].items() if k != "at"}


def test_a_bench_that_failed_says_why_with_its_log(tmp_path: Path) -> None:
    code, log = bench(tmp_path, "http://127.0.0.1:9", "Tiny.test_nope")
    assert code != 0
    shell = {"changed": True, "rc": code, "failed": True, "msg": "non-zero return code"}
    result = status(tmp_path, log, shell)
    assert result["failed"] is True
    first, _, said = result["msg"].partition("\n")
    assert first == f"the bench exited {code} without results; the last lines of {log}:"
    assert "test_nope" in said
    assert said.splitlines()[-1] == log.read_text().strip().splitlines()[-1].strip()


def test_a_bench_with_errors_that_wrote_its_results_is_not_a_failed_task(tmp_path: Path) -> None:
    """255 (errors, FunkLoad's code) with results: collected like any other, and the run
    exits with that status; a non-zero `rc` alone would make Ansible fail the task."""
    code, log = bench(tmp_path, "http://127.0.0.1:9", "Tiny.test_get")
    assert code == 255, log.read_text()
    result = status(tmp_path, log, {"changed": True, "rc": code, "failed": True, "msg": "x"})
    assert result["failed"] is False and result["rc"] == 255
    assert result["log_xml"].endswith("tiny-bench.xml")
    assert result["lines"][-1]["errors"] > 0
