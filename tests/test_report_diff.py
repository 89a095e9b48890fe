"""--diff and --trend: two reports (Marteau's and FunkLoad's layout), deltas, bad directories."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from marteau.report.command import report_command
from marteau.report.diff import diff_name, read_report, verdict

DATA = Path(__file__).parent / "data" / "report"
SIMPLE = DATA / "simple.xml"
REF = "test_simple-20150601T100000"
NEW = "test_simple-20150602T100000"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_command, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two reports of the same test: the second a day later, with slower 0.1 s requests."""
    root = tmp_path_factory.mktemp("reports")
    slower = SIMPLE.read_text().replace('duration="0.1"', 'duration="0.3"')
    slower = slower.replace("2015-06-01T10:00:00", "2015-06-02T10:00:00")
    (root / "slower.xml").write_text(slower)
    for source in (SIMPLE, root / "slower.xml"):
        code, _, err = run("-H", "-o", str(root), "--skip-definitions", str(source))
        assert code == 0, err
    return root


def test_diff_report(reports: Path, tmp_path: Path) -> None:
    code, out, err = run("--diff", str(reports / REF), str(reports / NEW), "-o", str(tmp_path))
    assert code == 0, err
    directory = tmp_path / f"diff_{REF}_vs_20150602T100000"
    assert out.strip() == str((directory / "index.html").resolve())
    data = json.loads((directory / "diff.json").read_text())
    assert data["reference"]["source"] == "summary.json"
    assert [r["cvus"] for r in data["requests"]] == [2, 4]
    two = data["requests"][0]["metrics"]
    # same number of requests in the same window: RPS unchanged
    assert two["rate"]["class"] == "same" and two["rate"]["delta"] == 0
    # /early.png took 0.3 s instead of 0.1 s: the average got worse by 0.2 / 9
    assert two["avg"]["class"] == "worse"
    assert two["avg"]["delta"] == pytest.approx(0.2 / 9)
    four = data["requests"][1]["metrics"]  # 0.1 + 0.2 -> 0.3 + 0.2
    assert four["avg"]["ref"] == pytest.approx(0.15) and four["avg"]["new"] == pytest.approx(0.25)
    assert four["avg"]["percent"] == pytest.approx(100 * 0.1 / 0.15)
    html = (directory / "index.html").read_text()
    assert f'href="../{REF}/index.html"' not in html  # the reports are elsewhere
    link = data["reference"]["link"]
    assert (directory / link).resolve() == (reports / REF / "index.html").resolve()
    assert f'href="{link}"' in html
    assert 'class="num delta worse"' in html and 'class="num delta same"' in html
    for chart in ("spps_diff", "rps_diff", "apdex_diff", "request", "page"):
        assert (directory / f"{chart}.png").stat().st_size > 1000, chart
        png = (directory / f"{chart}.png").read_bytes()
        assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in html


def test_diff_of_funkload_report_directories(reports: Path, tmp_path: Path) -> None:
    """FunkLoad's reports have no summary.json: the index.rst tables are read."""
    for name in (REF, NEW):
        (tmp_path / name).mkdir()
        shutil.copy(reports / name / "index.rst", tmp_path / name / "index.rst")
    (tmp_path / NEW / "funkload.metadata").write_text(
        "label: faster disks\nbuild=43\nA free text description.\n"
    )
    rst = read_report(str(tmp_path / REF))
    summary = read_report(str(reports / REF))
    assert rst.source == "index.rst" and summary.source == "summary.json"
    assert rst.launched == summary.launched == "2015-06-01 10:00:00"
    assert rst.cycles == [2, 4, 6] and rst.max_cvus == 6
    assert [r["cvus"] for r in rst.pages] == [2, 4]
    for ours, theirs in zip(rst.pages, summary.pages, strict=True):
        for key in ("apdex", "rate", "max_rate", "avg", "p95"):
            assert ours[key] == pytest.approx(theirs[key], abs=0.0005), key
        assert ours["error_percent"] == pytest.approx(theirs["error_percent"], abs=0.005)
        assert ours["rating"] == theirs["rating"] and ours["count"] == theirs["count"]
    new = read_report(str(tmp_path / NEW))
    assert new.label == "faster disks" and new.metadata["build"] == "43"
    assert new.description == "A free text description."
    code, _, err = run(
        "--diff", str(tmp_path / REF), str(tmp_path / NEW), "-r", str(tmp_path / "d")
    )
    assert code == 0, err
    data = json.loads((tmp_path / "d" / "diff.json").read_text())
    # /early.png comes before the first page (ignored): only the 4 CUs pages are slower
    assert data["pages"][0]["metrics"]["avg"]["class"] == "same"
    assert data["pages"][1]["metrics"]["avg"]["class"] == "worse"
    assert data["reference"]["link"] == f"../{REF}/index.rst"


def test_trend_report(reports: Path, tmp_path: Path) -> None:
    (reports / NEW / "funkload.metadata").write_text("label=after\n")
    try:
        code, out, err = run("--trend", str(reports / REF), str(reports / NEW), "-o", str(tmp_path))
    finally:
        (reports / NEW / "funkload.metadata").unlink()
    assert code == 0, err
    directory = tmp_path / "trend-report"
    assert out.strip() == str((directory / "index.html").resolve())
    data = json.loads((directory / "trend.json").read_text())
    assert data["levels"] == [2, 4]
    first, second = data["benches"]
    assert first["launched"] == "2015-06-01 10:00:00" and second["label"] == "after"
    assert first["figures"]["cvus"] == 4 and first["changes"]["avg"] is None
    assert second["changes"]["avg"]["class"] == "worse"  # page AVG 0.15 -> 0.25 at 4 CUs
    avg = next(t for t in data["tables"] if t["chart"] == "trend_avg")
    assert [c["value"] for c in avg["rows"][0]["cells"]] == pytest.approx([1.332, 0.15], abs=1e-3)
    html = (directory / "index.html").read_text()
    assert "after" in html and f'href="../{REF}/index.html"' not in html
    for chart in ("trend_apdex", "trend_spps", "trend_avg", "trend_rps", "trend_p95"):
        assert (directory / f"{chart}.png").exists(), chart


def test_not_a_report_directory(reports: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run("--diff", str(reports / REF), str(empty), "-o", str(tmp_path))
    assert code == 2
    assert f"{empty}: not a report directory" in err
    code, _, err = run("--trend", str(tmp_path / "missing"), str(reports / REF))
    assert code == 2 and f"{tmp_path / 'missing'}: not a report directory" in err
    (empty / "index.rst").write_text("Some text\n=========\n\nNo tables.\n")
    code, _, err = run("--trend", str(reports / REF), str(empty), "-o", str(tmp_path))
    assert code == 2 and "index.rst has no Page stats table" in err
    assert not (tmp_path / "trend-report").exists()


def test_diff_name_and_verdicts() -> None:
    assert diff_name("a/t-20110126T232251", "b/t-20110127T101010/") == (
        "diff_t-20110126T232251_vs_20110127T101010"
    )
    assert diff_name("x/bench", "y/bench") == "diff_bench_vs_idem"
    assert diff_name("one", "two") == "diff_one_vs_two"
    assert verdict("rate", 100.0, 110.0)["class"] == "better"
    assert verdict("p95", 1.0, 1.1)["class"] == "worse"
    assert verdict("p95", 1.0, 1.005)["class"] == "same"
    assert verdict("apdex", 0.90, 0.95)["class"] == "better"
    assert verdict("error_percent", 0.0, 2.0)["class"] == "worse"
    assert verdict("p99", -1.0, 0.5)["class"] == "na"
