"""FunkLoad's statistics (FUNKLOAD.md §5.2): golden figures computed by hand.

The expected numbers below come from working the data out on paper (see
the comments), never from the code under test.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from marteau.report import stats as st
from marteau.results import load
from marteau.results.merge import NodeInfo
from tests.support.records import make_rs

DATA = Path(__file__).parent / "data" / "report"


@pytest.fixture(scope="module")
def simple() -> st.BenchStats:
    return st.compute(load(DATA / "simple.xml"))


# -- simple.xml, cycle 0 (2 CUs), worked out by hand -----------------------
# responses in file order (time, duration, type, result):
#  a 1000.1 0.1  image ok  thread 0  <- before thread 0's first page: no page
#  b 1000.2 0.2  get   ok  thread 0  page P1
#  h 1000.4 5.99 get   ok  thread 1  page P5
#  c 1000.5 0.3  image ok  thread 0  P1 (=0.5)
#  d 1001.0 1.49 post  ok  thread 0  page P2
#  e 1002.5 0.01 get   ok  thread 0  page P3 (a redirect: new page, quirk)
#  f 1002.6 1.5  get   404 thread 0  page P4 (failure)
#  g 1004.1 0.4  link  ok  thread 0  P4 (=1.9, failed)
#  i 1006.5 6.0  get   err thread 1  page P6 (error)


def test_request_stats_cycle0(simple: st.BenchStats) -> None:
    r = simple.cycles[0].requests
    assert r is not None
    assert (r.cvus, r.count, r.success, r.error) == (2, 9, 7, 2)
    assert f"{r.error_percent:.2f}" == "22.22"
    assert r.min == 0.01 and r.max == 6.0
    assert f"{r.avg:.3f}" == "1.777"  # 15.99 / 9
    # sorted: .01 .1 .2 .3 .4 1.49 1.5 5.99 6.0 ; idx int(p/100*9): 0, 4, 8, 8
    assert [r.percentiles[k] for k in ("p10", "p50", "p90", "p95")] == [0.01, 0.4, 6.0, 6.0]
    # satisfied < 1.5: 6; tolerating [1.5, 6): 1.5 and 5.99; frustrated: 6.0
    assert (r.apdex.satisfied, r.apdex.tolerating, r.apdex.frustrated) == (6, 2, 1)
    assert f"{r.apdex.score:.3f}" == "0.778" and r.apdex.label == "FAIR"
    assert r.rps == 0.9
    assert r.max_rps == 4  # a, b, h, c start in second 1000


def test_page_stats_cycle0_quirks(simple: st.BenchStats) -> None:
    p = simple.cycles[0].pages
    assert p is not None
    # P1..P6: the image before the first page is ignored, the redirect is a page
    assert (p.count, p.success, p.error) == (6, 4, 2)
    # successful pages 0.5, 1.49, 0.01, 5.99: avg divides by ALL 6 pages (quirk)
    assert f"{p.avg:.3f}" == "1.332"
    assert (p.min, p.max) == (0.01, 5.99)
    # sorted successful: .01 .5 1.49 5.99 ; idx int(p/100*4): 0, 2, 3, 3
    assert [p.percentiles[k] for k in ("p10", "p50", "p90", "p95")] == [0.01, 1.49, 5.99, 5.99]
    # Apdex over the 8 response durations of pages (quirk), not the 6 pages:
    # .2 .3 1.49 .01 .4 satisfied, 1.5 5.99 tolerating, 6.0 frustrated
    assert (p.apdex.satisfied, p.apdex.tolerating, p.apdex.frustrated) == (5, 2, 1)
    assert p.apdex.score == 0.75 and p.apdex.label == "FAIR"
    assert p.spps == 0.4
    assert p.max_spps == 2  # successful pages P1 and P5 both start in second 1000


def test_test_stats_and_totals(simple: st.BenchStats) -> None:
    t = simple.cycles[0].tests
    assert t is not None
    assert (t.count, t.success, t.error, t.error_percent, t.stps) == (2, 1, 1, 50.0, 0.1)
    assert (t.min, t.avg, t.max) == (4.0, 4.0, 4.0)  # connection_duration of successful tests
    assert (t.pages, t.redirects, t.images, t.links, t.xmlrpc) == (4, 1, 1, 1, 0)
    assert t.tracebacks == ["Traceback (most recent call last):\nsocket.timeout: timed out"]
    assert simple.cycles[1].tests is None  # no test finished in cycle 1: no row
    assert simple.totals == st.Totals(2, 1, 8, 2, 11, 2)


def test_cycles_best_and_representative(simple: st.BenchStats) -> None:
    # the config has 3 cycles; the third has no record at all: no CycleStats
    assert [c.cycle for c in simple.cycles] == [0, 1]
    assert [c.cvus for c in simple.cycles] == [2, 4]
    # cycle 0 page Apdex 0.75 < 0.85 is not eligible; cycle 1 (Apdex 1.0) is best
    assert simple.best_cycle == 1
    # representative: the first cycle having a step (quirk), although cycle 0 has more
    assert simple.representative_cycle == 0


def test_step_stats(simple: st.BenchStats) -> None:
    steps = {s.key: s for s in simple.cycles[0].steps}
    assert list(steps) == sorted(steps)
    home = steps["001.002"]
    assert (home.count, home.url, home.type, home.description) == (2, "/index.html", "get", "Home")
    assert f"{home.avg:.3f}" == "3.095"
    assert steps["001.001"].description == ""
    assert steps["004.001"].url == "http://localhost/slow"


def test_errors_and_http_codes(simple: st.BenchStats) -> None:
    failure, error = simple.errors
    assert (failure.result, failure.code, failure.count, failure.traceback) == (
        "Failure",
        404,
        1,
        None,
    )
    assert error.result == "Error" and error.code == -1
    assert error.traceback is not None and "socket.timeout" in error.traceback
    codes = {c.code: c for c in simple.http_codes}
    assert sorted(codes) == [-1, 200, 302, 404]
    assert codes[404].sample_body == "<html>Not <b>found</b></html>"
    assert codes[200].count == 8


def test_standard_apdex_counts_errors_frustrated(simple: st.BenchStats) -> None:
    # cycle 0: a b h c d e g successful, f (404, 1.5 s) and i (error, 6.0 s) not;
    # cycle 1: 0.1 and 0.2 s.  Satisfied (< 1.5 s): a b c d e g + both of cycle 1 = 8;
    # tolerating (< 6 s): h; f and i frustrated whatever their time.
    assert simple.apdex == st.Apdex(1.5, 8, 1, 2, 8.5 / 11, "FAIR")
    # FunkLoad's score counts f as tolerating: (8 + 2/2) / 11
    assert simple.overall_requests.apdex.score == pytest.approx(9 / 11)


def test_error_kinds(simple: st.BenchStats) -> None:
    kinds = [(k.what, k.kind, k.result, k.count, k.cycles) for k in simple.error_kinds]
    assert kinds == [
        ("request", "timeout", "Error", 1, [0]),  # socket.timeout
        ("request", "HTTP 404", "Failure", 1, [0]),
        ("test", "timeout", "Error", 1, [0]),
    ]
    refused, failure, test = simple.error_kinds
    assert refused.sample_url == "http://localhost/slow"
    assert refused.message == "timeout: timed out"
    assert refused.traceback == (
        "Traceback (most recent call last):\n"
        '  File "test_Simple.py", line 9, in test_simple\n'
        "socket.timeout: timed out"
    )
    assert (failure.message, failure.traceback, failure.sample_url) == (
        "HTTP status 404",
        None,
        "/search?q=x",
    )
    assert test.sample_url is None


def test_last_nonempty_description() -> None:
    rs = make_rs(
        [
            {"time": 1.0, "duration": 0.1, "description": "First"},
            {"time": 2.0, "duration": 0.1, "description": "Second", "url": "/a"},
            {"time": 3.0, "duration": 0.1, "description": "", "url": "/b", "type": "post"},
        ]
    )
    (step,) = st.compute(rs).cycles[0].steps
    assert (step.description, step.url, step.type) == ("Second", "/b", "post")


# -- Apdex and percentiles --------------------------------------------------


@pytest.mark.parametrize(
    ("durations", "counts", "label"),
    [
        ([1.49], (1, 0, 0), "Excellent"),
        ([1.5], (0, 1, 0), "POOR"),
        ([5.99], (0, 1, 0), "POOR"),
        ([6.0], (0, 0, 1), "UNACCEPTABLE"),
        ([0.1] * 10, (10, 0, 0), "Excellent"),
        ([7.0] * 10, (0, 0, 10), "UNACCEPTABLE"),
    ],
)
def test_apdex_boundaries(durations: list[float], counts: tuple[int, int, int], label: str) -> None:
    a = st.apdex(np.array(durations), 1.5)
    assert (a.satisfied, a.tolerating, a.frustrated) == counts
    assert a.label == label


def test_apdex_scores() -> None:
    assert st.apdex(np.array([0.1] * 10), 1.5).score == 1.0
    assert st.apdex(np.array([9.0] * 10), 1.5).score == 0
    assert st.apdex(np.array([]), 1.5).score == 0
    assert st.apdex(np.array([1.0, 2.0, 7.0, 7.0]), 1.5).score == 0.375  # (1 + 0.5) / 4


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.0, "UNACCEPTABLE"),
        (0.4999, "UNACCEPTABLE"),
        (0.5, "POOR"),
        (0.7, "FAIR"),
        (0.85, "Good"),
        (0.9399, "Good"),
        (0.94, "Excellent"),
        (1.0, "Excellent"),
    ],
)
def test_apdex_labels(score: float, label: str) -> None:
    assert st.apdex_label(score) == label


def test_percentile_index_rule() -> None:
    values = np.arange(1, 21, dtype=float)  # 1..20, n = 20
    p = st.percentiles(values)
    # int(0.1*20)=2 -> 3.0 ; int(0.5*20)=10 -> 11.0 ; int(0.9*20)=18 -> 19.0 ;
    # int(0.95*20)=19 -> 20.0 ; int(0.99*20)=19 ; int(0.999*20)=19
    assert p == {"p10": 3.0, "p50": 11.0, "p90": 19.0, "p95": 20.0, "p99": 20.0, "p99_9": 20.0}
    assert st.percentiles(np.array([]))["p95"] == -1.0
    assert st.percentiles(np.array([4.0]))["p10"] == 4.0


def test_p99_tail() -> None:
    values = np.arange(1000, dtype=float)
    p = st.percentiles(values)
    assert (p["p99"], p["p99_9"]) == (990.0, 999.0)


def test_sums_are_left_to_right() -> None:
    rng = random.Random(7)
    values = [rng.random() * 10 ** rng.randint(-3, 3) for _ in range(2000)]
    expected = 0.0
    for v in values:
        expected += v
    assert st.sequential_sum(np.array(values)) == expected
    starts, lengths = np.array([0, 3, 100]), np.array([3, 97, 1900])
    sums = st.segment_sums(np.array(values), starts, lengths)
    for s, n, got in zip(starts, lengths, sums, strict=True):
        acc = 0.0
        for v in values[s : s + n]:
            acc += v
        assert got == acc


# -- page grouping on synthetic data ----------------------------------------


def test_page_grouping_per_thread_and_cycle() -> None:
    rs = make_rs(
        [
            # thread 1 starts with a link: ignored for pages
            {"thread": 1, "time": 10.0, "duration": 1.0, "type": "link"},
            {"thread": 0, "time": 10.0, "duration": 0.5, "type": "post"},
            {"thread": 1, "time": 11.0, "duration": 0.25, "type": "xmlrpc"},
            {"thread": 0, "time": 11.5, "duration": 0.5, "type": "PROPFIND"},  # joins the post
            {"thread": 0, "time": 12.0, "duration": 2.0, "type": "head"},
            {"thread": 0, "time": 13.0, "duration": 0.5, "type": "options"},  # joins head
            {"thread": 1, "time": 14.0, "duration": 1.0, "type": "delete", "result": "Failure"},
            {"thread": 1, "time": 14.5, "duration": 1.0, "type": "put"},
        ],
        config={"duration": "4"},
    )
    p = st.compute(rs).cycles[0].pages
    assert p is not None
    # pages: t0 post(1.0) head(2.5); t1 xmlrpc(0.25) delete(1.0, failed) put(1.0)
    assert (p.count, p.success, p.error) == (5, 4, 1)
    assert (p.min, p.max) == (0.25, 2.5)
    assert p.avg == (1.0 + 2.5 + 0.25 + 1.0) / 5
    assert p.spps == 1.0  # 4 / 4
    assert p.max_spps == 1
    assert p.apdex.satisfied + p.apdex.tolerating + p.apdex.frustrated == 7  # not the link


def test_cvus_from_tests_only_cycle_and_empty() -> None:
    rs = make_rs(tests=[{"cycle": 2, "cvus": 7, "connection_duration": 1.0}])
    bench = st.compute(rs)
    assert [(c.cycle, c.cvus, c.requests, c.pages) for c in bench.cycles] == [(2, 7, None, None)]
    empty = st.compute(make_rs())
    assert empty.cycles == [] and empty.best_cycle is None and empty.representative_cycle is None


def test_best_cycle_rule() -> None:
    def cycle(n: int, spps: float, score: float) -> st.CycleStats:
        pages = st.PageStats(
            0, 0, 0, 0.0, 0.0, 0.0, 0.0, {}, st.Apdex(1.5, score=score), spps=spps, cycle=n
        )
        return st.CycleStats(n, 1, None, pages, None, [])

    assert st.best_cycle([cycle(0, 10, 0.84), cycle(1, 5, 0.9), cycle(2, 6, 0.86)]) == 2
    assert st.best_cycle([cycle(0, 10, 0.5), cycle(1, 20, 0.6)]) == 0  # none eligible: first


def test_cpu_samples_warn_above_80() -> None:
    samples = [{"time": 1.0, "cpu_percent": 50.0}, {"time": 2.0, "cpu_percent": 93.0}]
    rs = make_rs([{"time": 1.0, "duration": 0.1}])
    node = NodeInfo("n1", 0, "synthetic.mrt", [1], rs.samples)
    bench = st.compute(rs, nodes=[node])
    assert bench.nodes[0].cpu is None
    rs2 = make_rs([{"time": 1.0, "duration": 0.1}], samples=samples)
    bench = st.compute(rs2, nodes=[NodeInfo("n1", 0, "x.mrt", [1], rs2.samples)])
    cpu = bench.nodes[0].cpu
    assert cpu is not None and cpu.max == 93.0 and cpu.warning and cpu.samples == 2
    assert any("93%" in w for w in bench.warnings)


def test_printable_body_escapes_controls() -> None:
    assert st.printable_body("a\x00b\nc") == "a\\x00b\nc"
    assert st.printable_body("x" * 5000) == "x" * 1024
    assert st.printable_body("") is None


def test_percentiles_of_sorted_runs_equal_sorted_index_of_their_union() -> None:
    # the overall, per-node and per-description percentiles come from the
    # per-cycle sorted values without merging them: same values as sorting
    rng = random.Random(5)
    for _ in range(500):
        runs = [
            sorted(round(rng.uniform(0, 2), rng.randint(0, 3)) for _ in range(rng.randint(0, 30)))
            for _ in range(rng.randint(1, 6))
        ]
        union = sorted(v for run in runs for v in run)
        n = len(union)
        expected = {
            key: (union[int(p / 100.0 * n)] if n else -1.0)
            for key, p in (
                ("p10", 10),
                ("p50", 50),
                ("p90", 90),
                ("p95", 95),
                ("p99", 99),
                ("p99_9", 99.9),
            )
        }
        assert st.run_percentiles([np.array(run, dtype=float) for run in runs]) == expected
