"""`marteau report` / `fl-build-report`: outputs, directory, exit codes, bad inputs."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from marteau.report.command import report_command, report_directory_name
from marteau.report.summary import read_summary

DATA = Path(__file__).parent / "data" / "report"
SIMPLE = str(DATA / "simple.xml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_command, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_rest_to_stdout() -> None:
    code, out, _ = run(SIMPLE)
    assert code == 0
    assert out.startswith("======================\nFunkLoad_ bench report\n")
    assert "* Cycles of concurrent users: [2, 4, 6]" in out


def test_html_directory(tmp_path: Path) -> None:
    code, out, _ = run("--html", "-o", str(tmp_path), "--skip-definitions", "-T", "2", SIMPLE)
    assert code == 0
    directory = tmp_path / "test_simple-20150601T100000"
    assert out.strip() == str(directory.resolve()) or out.strip().startswith(
        str(directory.resolve())
    )
    assert (directory / "funkload.xml").read_bytes() == Path(SIMPLE).read_bytes()
    rst = (directory / "index.rst").read_text()
    assert "Definitions" not in rst.split("\n") and ":sub:`2.0`" in rst
    summary = read_summary(directory)
    assert summary["schema"] == "marteau.summary/1" and summary["apdex_t"] == 2.0
    assert summary["bench"]["cycles"] == [2, 4, 6]
    # with T = 2 cycle 0's page Apdex is (6 + 2/2) / 8 = 0.875 >= 0.85 and
    # 0.4 SPPS x 0.875 = 0.35 beats cycle 1's 0.2 x 1.0
    assert summary["best_cycle"] == 0
    assert summary["cycles"][0]["requests"]["count"] == 9
    assert summary["inputs"] == [{"path": SIMPLE, "node": "alpha", "used": True, "reason": None}]
    assert not (directory / "junit.xml").exists()


def test_report_directory_option_and_label(tmp_path: Path) -> None:
    target = tmp_path / "exact"
    code, out, _ = run("-H", "-r", str(target), SIMPLE)
    assert code == 0 and (target / "index.rst").exists()
    assert report_directory_name(
        {"id": "t", "marteau:time": "2011-01-26T23:22:51.2677", "label": "rc1"}
    ) == ("t-20110126T232251-rc1")


def test_two_nodes_merged(tmp_path: Path) -> None:
    code, out, err = run(
        "-H", "-o", str(tmp_path), SIMPLE, str(DATA / "node2.xml"), str(DATA / "other_duration.xml")
    )
    assert code == 0
    assert "other_duration.xml: skipped: cycle duration 20 differs from 10" in err
    (directory,) = tmp_path.iterdir()
    merged = (directory / "funkload.xml").read_text()
    assert '<config key="cycles" value="[4, 8, 12]" />' in merged
    rst = (directory / "index.rst").read_text()
    assert "* From: alpha, beta" in rst and "* Cycles of concurrent users: [4, 8, 12]" in rst
    assert "other_duration.xml: skipped" in rst
    assert "Nodes" in rst.split("\n")
    summary = json.loads((directory / "summary.json").read_text())
    assert [i["used"] for i in summary["inputs"]] == [True, True, False]
    assert [n["name"] for n in summary["nodes"]] == ["alpha", "beta"]


def test_node_names_missing_nodes_and_warnings(tmp_path: Path) -> None:
    # what `marteau run` passes: inventory names, the nodes that gave nothing, what it saw
    dropped = "node web-2: the egress firewall dropped 3 packet(s) the job sent elsewhere"
    code, _, err = run(
        "-H", "-r", str(tmp_path / "r"), SIMPLE, str(DATA / "node2.xml"),
        f"--node-name={SIMPLE}=web-1", f"--node-name={DATA / 'node2.xml'}=web-2",
        "--missing-node", "web-3: unreachable: ssh: connect refused",
        "--missing-node=web-4:", "--warning", dropped,
    )  # fmt: skip
    assert code == 0, err
    summary = read_summary(tmp_path / "r")
    assert [n["name"] for n in summary["nodes"]] == ["web-1", "web-2"]
    assert [i["node"] for i in summary["inputs"]] == ["web-1", "web-2"]
    assert summary["missing_nodes"] == [
        {"node": "web-3", "reason": "unreachable: ssh: connect refused"},
        {"node": "web-4", "reason": ""},
    ]
    wanted = [
        "node web-3: missing from this report (unreachable: ssh: connect refused)",
        "node web-4: missing from this report (no results)",
        dropped,
    ]
    assert all(w in summary["warnings"] for w in wanted)
    rst = (tmp_path / "r" / "index.rst").read_text()
    assert "* From: web-1, web-2" in rst and all(f"* {w}" in rst for w in wanted)
    pages = [p.read_text() for p in (tmp_path / "r").glob("*.html")]
    if pages:  # the HTML renderer is installed: the warnings section names them
        assert any("What was skipped or tolerated" in p and wanted[0] in p for p in pages)
    code, _, err = run("--missing-node", "no reason", SIMPLE)
    assert code == 2 and "--missing-node takes 'NAME: REASON'" in err
    code, _, err = run("--node-name", "web-1", SIMPLE)
    assert code == 2 and "--node-name takes PATH=NAME" in err


def test_load_a_bench_lost_is_in_the_warnings(tmp_path: Path) -> None:
    # what `marteau bench` stores when its start or a cycle came late (marteau:lost)
    lost = ["started 3.2s after the shared start instant", "cycle #0: no test finished"]
    value = json.dumps(lost).replace('"', "&quot;")
    late = tmp_path / "late.xml"
    late.write_text(
        Path(SIMPLE)
        .read_text()
        .replace("<config ", f'<config key="marteau:lost" value="{value}"/>\n<config ', 1)
    )
    code, _, err = run("-H", "-r", str(tmp_path / "r"), str(late), str(DATA / "node2.xml"))
    assert code == 0, err
    wanted = [f"node alpha: load lost: {text}" for text in lost]
    summary = read_summary(tmp_path / "r")
    assert [w for w in summary["warnings"] if "load lost" in w] == wanted
    pages = [p.read_text() for p in (tmp_path / "r").glob("*.html")]
    if pages:  # the HTML renderer is installed: the warnings box names them
        assert any(all(w in p for w in wanted) for p in pages)


def test_thresholds_exit_codes_and_junit(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("thresholds:\n  - error_rate < 20%\n  - apdex >= 0.8\n")
    code, _, err = run("-H", "-r", str(tmp_path / "ok"), "--thresholds", str(good), SIMPLE)
    assert code == 0 and "2 threshold(s) passed" in err
    assert ET.parse(tmp_path / "ok" / "junit.xml").getroot().get("failures") == "0"
    bad = tmp_path / "bad.yml"
    bad.write_text("- p95 < 0.5\n- error_rate < 20%\n")
    code, _, err = run("-H", "-r", str(tmp_path / "ko"), "--thresholds", str(bad), SIMPLE)
    assert code == 1
    assert "Threshold failed: p95 < 0.5" in err
    root = ET.parse(tmp_path / "ko" / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    rst = (tmp_path / "ko" / "index.rst").read_text()
    assert "Thresholds" in rst.split("\n") and "**FAIL**" in rst
    assert read_summary(tmp_path / "ko")["thresholds"]["passed"] is False
    # without --html, junit.xml goes to the -o directory
    code, out, _ = run("-o", str(tmp_path / "plain"), "--thresholds", str(bad), SIMPLE)
    assert code == 1 and (tmp_path / "plain" / "junit.xml").exists() and "Page stats" in out


def test_bad_thresholds_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.yml"
    bad.write_text("- p95 << 1\n")
    code, _, err = run("--thresholds", str(bad), SIMPLE)
    assert code == 2 and "t.yml" in err and "p95 << 1" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty result file"),
        (b"hello world\n", "not a FunkLoad XML result file"),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    code, _, err = run(str(path))
    assert code == 2 and expected in err and "bad.xml" in err


def test_killed_bench_still_reports(tmp_path: Path) -> None:
    text = Path(SIMPLE).read_text()
    killed = tmp_path / "killed.xml"
    killed.write_text(text.replace("</funkload>\n", ""))
    code, out, _ = run(str(killed))
    assert code == 0 and "missing </funkload>" in out
    truncated = tmp_path / "truncated.xml"
    truncated.write_text(text[: text.index('<response cycle="001"') + 40])
    code, out, _ = run(str(truncated))
    assert code == 0 and "Page stats" in out
    invalid = tmp_path / "invalid.xml"
    invalid.write_bytes(Path(SIMPLE).read_bytes().replace(b"Not <b>found", b"Not \xff\xfe found"))
    code, out, _ = run(str(invalid))
    assert code == 0 and "invalid UTF-8" in out


def test_missing_file_and_no_arguments(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.xml"))
    assert code == 2 and "nope.xml" in err
    code, _, err = run()
    assert code == 2


def test_diff_trend_not_yet(tmp_path: Path) -> None:
    # --org is implemented now (tests/test_report_org.py)
    code, _, err = run("--diff", str(tmp_path), str(tmp_path))
    assert code == 2


def test_fl_build_report_alias(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from marteau import cli

    monkeypatch.setattr("sys.argv", ["fl-build-report", SIMPLE])
    with pytest.raises(SystemExit) as info:
        cli.fl_build_report()
    assert info.value.code == 0
    assert "FunkLoad_ bench report" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["fl-build-report", "--help"])
    with pytest.raises(SystemExit):
        cli.fl_build_report()
    assert "Usage: fl-build-report" in capsys.readouterr().out


def test_custom_css_copied(tmp_path: Path) -> None:
    css = tmp_path / "my.css"
    css.write_text("body {}")
    target = tmp_path / "r"
    code, _, _ = run("-H", "-r", str(target), "-x", str(css), SIMPLE)
    assert code == 0 and (target / "my.css").read_text() == "body {}"
    shutil.rmtree(target)
