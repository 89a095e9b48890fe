"""Merging the result files of several nodes (FUNKLOAD.md §5.1; compact inputs sum users)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marteau.errors import MarteauError
from marteau.report.stats import compute
from marteau.results import load
from marteau.results.merge import load_all, merge, write_merged_xml
from tests.test_report_stats import make_rs

DATA = Path(__file__).parent / "data" / "report"


def test_two_funkload_nodes() -> None:
    merged = load_all([str(DATA / "simple.xml"), str(DATA / "node2.xml")])
    rs = merged.results
    assert merged.skipped == []
    assert rs.config["cycles"] == "[4, 8, 12]"  # [2, 4, 6] x 2 files
    assert rs.config["node"] == "alpha, beta"
    assert [n.name for n in merged.nodes] == ["alpha", "beta"]
    assert merged.thread_base == 1000
    # node 0 keeps its thread ids, node 1 gets the "1" prefix: 1000, 1001, 1002
    assert sorted(set(rs.responses["thread"].tolist())) == [0, 1, 2, 1000, 1001, 1002]
    assert set(rs.responses["cvus"][rs.responses["cycle"] == 0].tolist()) == {4}
    assert set(rs.tests["cvus"].tolist()) == {4}
    bench = compute(rs, nodes=merged.nodes, thread_base=merged.thread_base)
    c0 = bench.cycles[0]
    assert c0.cvus == 4 and c0.requests is not None and c0.pages is not None
    assert (c0.requests.count, c0.pages.count, c0.pages.success) == (18, 12, 8)
    assert c0.requests.rps == 1.8
    # per node: each node sees its own 9 requests with its own 2 users
    assert [(n.name, n.cycles[0].count, n.cycles[0].cvus) for n in bench.nodes] == [
        ("alpha", 9, 2),
        ("beta", 9, 2),
    ]
    # strings and details were remapped: urls and the 404 body survive
    codes = {c.code: c for c in bench.http_codes}
    assert codes[404].count == 2 and codes[404].sample_body == "<html>Not <b>found</b></html>"
    assert {s.url for s in c0.steps} >= {"/index.html", "/early.png", "http://localhost/slow"}


def test_incompatible_and_unreadable_inputs_are_skipped() -> None:
    merged = load_all(
        [
            str(DATA / "simple.xml"),
            str(DATA / "other_duration.xml"),
            str(DATA / "empty.xml"),
            str(DATA / "missing.xml"),
        ]
    )
    reasons = {Path(s.path).name: s.reason for s in merged.skipped}
    assert set(reasons) == {"other_duration.xml", "empty.xml", "missing.xml"}
    assert "cycle duration 20 differs from 10" in reasons["other_duration.xml"]
    assert "empty" in reasons["empty.xml"]
    assert merged.results.config["cycles"] == "[2, 4, 6]"  # one node left: unchanged
    assert [i["used"] for i in merged.inputs()] == [True, False, False, False]


def test_different_cycles_skipped() -> None:
    a = make_rs([{"time": 1.0, "duration": 0.1}], config={"cycles": "[1, 2]"}, source="a.xml")
    b = make_rs([{"time": 1.0, "duration": 0.1}], config={"cycles": "[1, 3]"}, source="b.xml")
    merged = merge([a, b])
    assert [s.path for s in merged.skipped] == ["b.xml"]
    assert "cycles [1, 3] differ from [1, 2]" in merged.skipped[0].reason


def test_nothing_usable_is_an_error() -> None:
    with pytest.raises(MarteauError, match="no usable result file"):
        load_all([str(DATA / "empty.xml")])


def test_compact_nodes_sum_their_real_users() -> None:
    a = make_rs(
        [
            {"cycle": 0, "cvus": 34, "time": 1.0, "duration": 0.1},
            {"cycle": 1, "cvus": 60, "time": 20.0, "duration": 0.1},
        ],
        config={"cycles": "[34, 60]", "node": "n1"},
        source="n1.mrt",
    )
    b = make_rs(
        [{"cycle": 0, "cvus": 33, "time": 1.0, "duration": 0.1}],
        config={"cycles": "[33, 70]", "node": "n2"},
        source="n2.mrt",
    )
    merged = merge([a, b])
    assert merged.skipped == []
    assert merged.results.config["cycles"] == "[67, 130]"  # per-cycle sums, not x 2
    bench = compute(merged.results, nodes=merged.nodes, thread_base=merged.thread_base)
    assert [c.cvus for c in bench.cycles] == [67, 130]
    assert [n.cycles[0].cvus for n in bench.nodes] == [34, 33]


def test_compact_nodes_need_the_same_number_of_cycles() -> None:
    a = make_rs(config={"cycles": "[1, 2]"}, source="a.mrt")
    b = make_rs(config={"cycles": "[1]"}, source="b.mrt")
    assert "1 cycles where a.mrt has 2" in merge([a, b]).skipped[0].reason


def test_large_thread_ids_do_not_collide() -> None:
    a = make_rs([{"thread": 1500, "time": 1.0, "duration": 0.1}], source="a.xml")
    b = make_rs([{"thread": 0, "time": 1.0, "duration": 0.1}], source="b.xml")
    merged = merge([a, b])
    assert merged.thread_base == 10000
    assert merged.results.responses["thread"].tolist() == [1500, 10000]


def test_merged_xml_file_gives_the_same_figures(tmp_path: Path) -> None:
    merged = load_all([str(DATA / "simple.xml"), str(DATA / "node2.xml")])
    out = tmp_path / "funkload.xml"
    write_merged_xml(merged, str(out))
    text = out.read_text()
    assert text.count("<funkload ") == 1 and text.rstrip().endswith("</funkload>")
    assert '<config key="cycles" value="[4, 8, 12]" />' in text
    assert '<config key="node" value="alpha, beta" />' in text
    assert 'cycle="000" cvus="004" thread="1001"' in text
    again = load(out)
    assert again.warnings == []
    direct = compute(merged.results)
    reread = compute(again)
    for x, y in zip(direct.cycles, reread.cycles, strict=True):
        assert x.requests == y.requests and x.pages == y.pages and x.tests == y.tests
    assert np.array_equal(
        np.sort(again.responses["thread"]), np.sort(merged.results.responses["thread"])
    )
