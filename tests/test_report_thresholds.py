"""Thresholds: parsing, evaluation on the whole bench or per cycle, junit.xml shape."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.report.junit import junit_tree, write_junit
from marteau.report.stats import compute
from marteau.report.thresholds import evaluate, load_thresholds, parse_expression, parse_thresholds
from marteau.results import load

DATA = Path(__file__).parent / "data" / "report"


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    return compute(load(DATA / "simple.xml"))


@pytest.mark.parametrize(
    ("text", "family", "metric", "op", "limit"),
    [
        ("p95 < 0.5", "requests", "p95", "<", 0.5),
        ("error_rate < 1%", "requests", "error_rate", "<", 1.0),
        ("apdex >= 0.85", "requests", "apdex", ">=", 0.85),
        ("rps > 100", "requests", "rps", ">", 100.0),
        ("spps > 10", "pages", "spps", ">", 10.0),
        ("p99 <= 2", "requests", "p99", "<=", 2.0),
        ("pages.p99.9 < 800ms", "pages", "p99_9", "<", 0.8),
        ("tests.stps>=1", "tests", "stps", ">=", 1.0),
        ("med < 1s", "requests", "p50", "<", 1.0),
        ("p99_latency < 0.5", "open", "latency_p99", "<", 0.5),
        ("p99.9_service < 900ms", "open", "service_p99_9", "<", 0.9),
        ("open.max_latency < 2", "open", "latency_max", "<", 2.0),
        ("dropped < 1%", "open", "dropped", "<", 1.0),
        ("achieved_rate > 0.99 * intended", "open", "achieved_rate", ">", 0.99),
        ("intended_rate >= 50", "open", "intended_rate", ">=", 50.0),
    ],
)
def test_parse(text: str, family: str, metric: str, op: str, limit: float) -> None:
    t = parse_expression(text, "t.yml")
    assert (t.family, t.metric, t.operator, t.limit) == (family, metric, op, limit)


@pytest.mark.parametrize(
    "text",
    [
        "p95 <",
        "latency < 3",
        "p95 = 1",
        "apdex < 5%",
        "error_rate < 3ms",
        "tests.p95 < 1",
        "p95 < abc",
        "p95 < 0.5 * intended",
        "achieved_rate > 0.99 * intended %",
        "p99_latency < 1%",
        "dropped < 3ms",
        "avg_latency < 1",
        42,
    ],
)
def test_bad_expressions_name_file_and_expression(text: object) -> None:
    with pytest.raises(MarteauError) as info:
        parse_thresholds([text], "conf/thresholds.yml")
    assert "conf/thresholds.yml" in str(info.value) and str(text) in str(info.value)


def test_open_thresholds_have_no_data_on_a_closed_bench(bench) -> None:  # type: ignore[no-untyped-def]
    thresholds = parse_thresholds(["p99_latency < 0.5", "p95 < 100"], "t.yml")
    results = evaluate(thresholds, bench)["results"]
    assert [r["passed"] for r in results] == [False, True]
    assert results[0]["message"] == "p99_latency < 0.5 (whole bench) failed: open: no data"


def test_file_forms(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yml"
    bare.write_text("- p95 < 1\n- apdex > 0.5\n")
    assert len(load_thresholds(bare).thresholds) == 2
    marteau = tmp_path / ".marteau.yml"
    marteau.write_text(
        "name: x\nscript: loadtest.py\nthresholds:\n  scope: cycles\n  global: [p95 < 1]\n"
        "  pages:\n    Login: [p95 < 0.8, error_rate < 1%]\n"
    )
    loaded = load_thresholds(marteau)
    assert loaded.scope == "cycles"
    assert [(t.page, t.metric) for t in loaded.thresholds] == [
        (None, "p95"),
        ("Login", "p95"),
        ("Login", "error_rate"),
    ]
    broken = tmp_path / "broken.yml"
    broken.write_text("thresholds: [p95 < 1\n")
    with pytest.raises(MarteauError, match="broken.yml"):
        load_thresholds(broken)
    with pytest.raises(MarteauError, match="scope"):
        parse_thresholds({"scope": "worst", "global": ["p95 < 1"]}, "x.yml")
    with pytest.raises(MarteauError, match="cannot read"):
        load_thresholds(tmp_path / "nope.yml")


def test_whole_bench_evaluation(bench) -> None:  # type: ignore[no-untyped-def]
    # whole bench: 11 requests, 2 errors -> 18.18%; sorted p95 idx int(0.95*11)=10 -> 6.0
    report = evaluate(
        parse_thresholds(
            ["error_rate < 20%", "p95 < 6", "rps >= 0.55", "tests.stps > 0.1"], "t.yml"
        ),
        bench,
    )
    assert [r["passed"] for r in report["results"]] == [True, False, True, False]
    assert report["passed"] is False
    assert report["results"][1]["actual"] == 6.0
    assert report["results"][3]["actual"] == 0.05  # 1 successful test / 20 s recorded


def test_per_cycle_and_best_scopes(bench) -> None:  # type: ignore[no-untyped-def]
    every = evaluate(
        parse_thresholds({"scope": "cycles", "global": ["apdex >= 0.9"]}, "t.yml"), bench
    )
    (result,) = every["results"]
    assert not result["passed"] and result["cycle"] == 0  # cycle 0: 0.778
    assert "cycle 0" in result["message"] and "cycle 1" not in result["message"]
    best = evaluate(parse_thresholds({"scope": "best", "global": ["apdex >= 0.9"]}, "t.yml"), bench)
    assert best["passed"] and best["results"][0]["cycle"] == 1
    last = evaluate(
        parse_thresholds({"scope": "last", "global": ["tests.stps > 0"]}, "t.yml"), bench
    )
    assert not last["passed"] and "no data" in last["results"][0]["message"]


def test_per_page(bench) -> None:  # type: ignore[no-untyped-def]
    report = evaluate(
        parse_thresholds(
            {"pages": {"Login": ["p95 < 1.5"], "Home": ["max < 1"], "Nope": ["p95 < 1"]}}, "t.yml"
        ),
        bench,
    )
    assert [r["passed"] for r in report["results"]] == [True, False, False]
    assert "no data" in report["results"][2]["message"]


def test_junit_shape(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = evaluate(
        parse_thresholds(
            {"global": ["p95 < 1", "apdex > 0.1"], "pages": {"Login": ["avg < 2"]}}, "t.yml"
        ),
        bench,
    )
    path = write_junit(tmp_path, report)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == ["p95 < 1", "apdex > 0.1", "Login: avg < 2"]
    assert all(c.get("classname") for c in cases)
    failure = cases[0].find("failure")
    assert failure is not None and "p95 < 1" in (failure.get("message") or "")
    assert cases[1].find("failure") is None and cases[2].find("failure") is None
    assert junit_tree(report).tag == "testsuite"
