"""Merging the result files of several nodes (FUNKLOAD.md §5.1; compact inputs sum users)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marteau.errors import MarteauError
from marteau.report.stats import compute
from marteau.results import load
from marteau.results.merge import load_all, merge, write_merged_xml
from tests.support.records import make_rs

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


# -- the optimised statistics against a plain Python reference ----------------
#
# Random nodes (unsorted cycles, threads interleaved, responses before a
# thread's first page, failures, tied durations, descriptions changing
# within a request key) are merged, and every figure is compared with one
# computed here from the node records in plain Python, as FunkLoad does:
# sums left to right in file order, percentiles by sorted index.

T_APDEX = 0.2
DURATION = 10.0
PAGE_KINDS = {"get", "post", "put", "delete", "head", "xmlrpc"}


def _random_node(rng: random.Random, node: int, users: list[int]) -> list[dict[str, Any]]:
    rows = []
    for cycle, count in enumerate(users):
        for thread in range(count):
            at = 100.0 * cycle + rng.uniform(0, 5)
            kinds = ["image"] if rng.random() < 0.3 else []  # before the first page
            for _ in range(rng.randint(1, 4)):
                kinds += [rng.choice(["get", "post", "xmlrpc"])]
                kinds += rng.choices(["image", "link", "get", "css"], k=rng.randint(0, 3))
            for step, kind in enumerate(kinds, 1):
                result = rng.choices(["Successful", "Failure", "Error"], [20, 2, 1])[0]
                duration = round(rng.choice([rng.uniform(0, 0.3), rng.uniform(0, 1.2)]), 2)
                rows.append(
                    {
                        "cycle": cycle,
                        "cvus": count,
                        "thread": thread,
                        "step": 1 + step % 4,
                        "number": 1 + step % 2,
                        "type": kind,
                        "url": f"/n{node}/{kind}/{step % 3}",
                        "description": rng.choice(["", "", "Home", "Search", f"Node {node}"]),
                        "result": result,
                        "code": {"Successful": 200, "Failure": 404, "Error": -1}[result],
                        "time": round(at, 2),
                        "duration": duration,
                    }
                )
                at += rng.uniform(0, 0.7)
    rng.shuffle(rows)  # threads and even cycles interleaved in the file
    rows.sort(key=lambda r: (r["time"] + r["duration"]) // 40)  # mostly cycle-grouped
    return rows


def _seq_sum(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def _ref_timing(values: list[float], results: list[str]) -> dict[str, Any]:
    n = len(values)
    ordered = sorted(values)
    success = results.count("Successful")
    satisfied = sum(1 for v in values if v < T_APDEX)
    tolerating = sum(1 for v in values if T_APDEX <= v < 4 * T_APDEX)
    return {
        "count": n,
        "success": success,
        "error": n - success,
        "min": min(values) if n else 0.0,
        "max": max(values) if n else 0.0,
        "avg": _seq_sum(values) / n if n else 0.0,
        "percentiles": {
            key: (ordered[int(p / 100.0 * n)] if n else -1.0)
            for key, p in (
                ("p10", 10),
                ("p50", 50),
                ("p90", 90),
                ("p95", 95),
                ("p99", 99),
                ("p99_9", 99.9),
            )
        },
        "apdex": (satisfied, tolerating, n - satisfied - tolerating),
    }


def _max_per_second(times: list[float]) -> int:
    counts: dict[int, int] = {}
    for time_ in times:
        counts[int(time_)] = counts.get(int(time_), 0) + 1
    return max(counts.values(), default=0)


def _got_timing(stats: Any) -> dict[str, Any]:
    return {
        "count": stats.count,
        "success": stats.success,
        "error": stats.error,
        "min": stats.min,
        "max": stats.max,
        "avg": stats.avg,
        "percentiles": stats.percentiles,
        "apdex": (stats.apdex.satisfied, stats.apdex.tolerating, stats.apdex.frustrated),
    }


def _ref_pages(rows: list[dict[str, Any]]) -> list[tuple[float, bool, int, list[float]]]:
    """(duration, ok, second, response durations) per page, in (thread, position) order."""
    pages = []
    for thread in sorted({r["thread"] for r in rows}):
        current = None
        for r in (r for r in rows if r["thread"] == thread):
            if r["type"] in PAGE_KINDS:
                current = [r]
                pages.append(current)
            elif current is not None:
                current.append(r)
    return [
        (
            _seq_sum([r["duration"] for r in page]),
            all(r["result"] == "Successful" for r in page),
            int(page[0]["time"]),
            [r["duration"] for r in page],
        )
        for page in pages
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("small_chunks", [False, True])
@pytest.mark.parametrize("from_files", [False, True])
def test_optimised_figures_equal_a_plain_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, small_chunks: bool, from_files: bool
) -> None:
    from marteau.report import stats as st
    from marteau.results.compact import RESPONSES, CompactWriter
    from marteau.results.records import RESPONSE_FIELDS, RESULT_CODES, numpy_dtype

    if small_chunks:  # chunk carries, and cycles given by index instead of runs
        monkeypatch.setattr(st, "_CHUNK", 7)
        monkeypatch.setattr(st, "_MAX_RUNS", 2)
    rng = random.Random(seed)
    node_users = [[2, 3, 1], [1, 4, 2], [3, 1, 2]]
    nodes = [_random_node(rng, i, users) for i, users in enumerate(node_users)]
    sets = []
    for i, rows in enumerate(nodes):
        config = {"cycles": str(node_users[i]), "duration": str(DURATION), "node": f"n{i}"}
        rs = make_rs(rows, config=config, source=str(tmp_path / f"n{i}.mrt"))
        if from_files:
            with CompactWriter(rs.source, rs.config) as writer:
                writer.strings(rs.strings[1:])
                writer.records(RESPONSES, rs.responses.tobytes())
        sets.append(rs)
    merged = load_all([rs.source for rs in sets]) if from_files else merge(sets)
    assert merged.results.responses.dtype == numpy_dtype(RESPONSE_FIELDS)
    bench = compute(
        merged.results, apdex_t=T_APDEX, nodes=merged.nodes, thread_base=merged.thread_base
    )

    # the merged records, in file order, as FunkLoad's merge makes them
    users = [sum(u[c] for u in node_users) for c in range(3)]
    rows = [
        {**r, "node": i, "thread": i * 1000 + r["thread"], "cvus": users[r["cycle"]]}
        for i, node_rows in enumerate(nodes)
        for r in node_rows
    ]
    assert RESULT_CODES["Successful"] == 0
    cycles = sorted({r["cycle"] for r in rows})
    recorded = DURATION * len(cycles)
    assert [c.cycle for c in bench.cycles] == cycles
    all_pages: list[tuple[float, bool, int, list[float]]] = []
    for got in bench.cycles:
        mine = [r for r in rows if r["cycle"] == got.cycle]
        durations = [r["duration"] for r in mine]
        assert got.cvus == mine[0]["cvus"]
        assert _got_timing(got.requests) == _ref_timing(durations, [r["result"] for r in mine])
        assert got.requests.rps == len(mine) / DURATION
        assert got.requests.max_rps == _max_per_second([r["time"] for r in mine])
        pages = _ref_pages(mine)
        all_pages += pages
        ok = [p for p in pages if p[1]]
        owned = [d for p in pages for d in p[3]]
        expected = _ref_timing([p[0] for p in ok], ["Successful"] * len(ok))
        expected["avg"] = _seq_sum([p[0] for p in ok]) / len(pages)
        expected.update(count=len(pages), error=len(pages) - len(ok))
        expected["apdex"] = _ref_timing(owned, [])["apdex"]
        assert _got_timing(got.pages) == expected
        assert got.pages.spps == len(ok) / DURATION
        assert got.pages.max_spps == _max_per_second([p[2] for p in ok])
        keys = sorted({(r["step"], r["number"]) for r in mine})
        assert [s.key for s in got.steps] == [f"{s:03d}.{n:03d}" for s, n in keys]
        for step, (s, n) in zip(got.steps, keys, strict=True):
            part = [r for r in mine if (r["step"], r["number"]) == (s, n)]
            durations = [r["duration"] for r in part]
            assert _got_timing(step) == _ref_timing(durations, [r["result"] for r in part])
            assert (step.url, step.type, step.cvus) == (
                part[-1]["url"],
                part[-1]["type"],
                part[0]["cvus"],
            )
            described = [r["description"] for r in part if r["description"]]
            assert step.description == (described[-1] if described else "")

    overall = bench.overall_requests
    assert _got_timing(overall) == _ref_timing(
        [r["duration"] for r in rows], [r["result"] for r in rows]
    )
    assert overall.rps == len(rows) / recorded
    assert overall.max_rps == _max_per_second([r["time"] for r in rows])
    ok = [p for p in all_pages if p[1]]
    assert bench.overall_pages.avg == _seq_sum([p[0] for p in ok]) / len(all_pages)
    assert bench.overall_pages.percentiles == _ref_timing([p[0] for p in ok], [])["percentiles"]
    assert (bench.overall_pages.count, bench.overall_pages.success) == (len(all_pages), len(ok))
    assert bench.overall_pages.max_spps == _max_per_second([p[2] for p in ok])

    texts = sorted({r["description"] for r in rows if r["description"]})
    assert [d.description for d in bench.descriptions] == texts
    for got_description, text in zip(bench.descriptions, texts, strict=True):
        part = [r for r in rows if r["description"] == text]
        assert _got_timing(got_description) == _ref_timing(
            [r["duration"] for r in part], [r["result"] for r in part]
        )
        assert got_description.rps == len(part) / recorded

    assert [n.name for n in bench.nodes] == ["n0", "n1", "n2"]
    for i, node in enumerate(bench.nodes):
        mine = [r for r in rows if r["node"] == i]
        node_cycles = sorted({r["cycle"] for r in mine})
        assert [c.cycle for c in node.cycles] == node_cycles
        for got, cycle in zip(node.cycles, node_cycles, strict=True):
            part = [r for r in mine if r["cycle"] == cycle]
            assert _got_timing(got) == _ref_timing(
                [r["duration"] for r in part], [r["result"] for r in part]
            )
            assert got.cvus == node_users[i][cycle]
            assert got.max_rps == _max_per_second([r["time"] for r in part])
        assert _got_timing(node.overall) == _ref_timing(
            [r["duration"] for r in mine], [r["result"] for r in mine]
        )
        assert node.overall.rps == len(mine) / (DURATION * len(node_cycles))
        assert node.overall.max_rps == _max_per_second([r["time"] for r in mine])

    codes = sorted({r["code"] for r in rows})
    assert [c.code for c in bench.http_codes] == codes
    for got_code, code in zip(bench.http_codes, codes, strict=True):
        part = [r for r in rows if r["code"] == code]
        results = [r["result"] for r in part]
        assert (got_code.count, got_code.success, got_code.failure, got_code.error) == (
            len(part),
            results.count("Successful"),
            results.count("Failure"),
            results.count("Error"),
        )
        bad = [r for r in part if r["result"] != "Successful"]
        assert got_code.sample_url == (bad or part)[0]["url"]
