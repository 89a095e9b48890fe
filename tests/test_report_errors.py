"""The report tells the truth about errors and small numbers.

A real bench against a port that refuses every connection: the headline
Apdex counts the errors as frustrated (FunkLoad's own tables keep their
score), the errors are grouped by kind with a traceback free of engine
frames and node paths.  Sub-millisecond responses keep their digits in
Marteau's tables, headline, "Slowest requests" and chart axes, while
``index.rst`` keeps FunkLoad's ``%.3f`` seconds.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from marteau.report import charts, errors
from marteau.report.command import report_command
from marteau.report.stats import milliseconds
from tests.support.commands import REPO, bench
from tests.support.html import tables_of

NODE_TRACEBACK = """\
Traceback (most recent call last):
  File "/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/engine/http.py", line 443, in _open_on_hub
    sock = HubSocket.connect(hub, address, timeout)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/engine/hub.py", line 254, in connect
    raise OSError(code, os.strerror(code))
ConnectionRefusedError: [Errno 111] Connection refused

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/funkload/testcase.py", line 1029, in run
    method()
  File "/var/lib/marteau-node/jobs/17/project/test_Shop.py", line 47, in test_buy
    self.get(self.url + "/cart", description="Cart")
  File "/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/funkload/testcase.py", line 390, in get
    return self._browse(
  File "/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/funkload/testcase.py", line 584, in _connect
    raise OSError(f"Can't load {url}.") from exc
OSError: Can't load http://127.0.0.1:8080/cart (see /var/lib/marteau-node/jobs/17/project/bench.log).
"""


def test_a_node_traceback_is_trimmed_to_the_users_frames() -> None:
    trimmed = errors.trim_traceback(NODE_TRACEBACK)
    assert trimmed == (
        "ConnectionRefusedError: [Errno 111] Connection refused\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "test_Shop.py", line 47, in test_buy\n'
        '    self.get(self.url + "/cart", description="Cart")\n'
        "  [2 frame(s) of Marteau or a library]\n"
        "OSError: Can't load http://127.0.0.1:8080/cart (see bench.log)."
    )
    assert errors.error_kind(NODE_TRACEBACK) == (
        "ConnectionRefusedError",
        "OSError: Can't load http://127.0.0.1:8080/cart (see bench.log).",
    )


def test_the_compiled_engines_frames_are_engine_frames_too() -> None:
    """mypyc names a compiled module's source relative to the package's folder, and
    shows no source line under it."""
    compiled = NODE_TRACEBACK.replace(
        '"/home/bench/.venvs/marteau/lib/python3.11/site-packages/marteau/engine/',
        '"marteau/engine/',
    )
    compiled = re.sub(r"(engine/\w+\.py.*\n)(    .*\n)+", r"\1", compiled)
    assert '"marteau/engine/hub.py", line 254, in connect\nConnection' in compiled
    assert errors.trim_traceback(compiled) == errors.trim_traceback(NODE_TRACEBACK)


def test_an_exception_raised_while_handling_another_is_the_kind() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/job/test_Shop.py", line 3, in test_buy\n'
        "    data = response.json()\n"
        "KeyError: 'id'\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/job/test_Shop.py", line 5, in test_buy\n'
        '    raise AssertionError("no id in the answer")\n'
        "AssertionError: no id in the answer\n"
    )
    assert errors.error_kind(text) == ("AssertionError", "AssertionError: no id in the answer")
    assert errors.error_kind(None) == ("no traceback", "")
    assert errors.trim_traceback("  \n") is None


@pytest.fixture
def refused_port() -> int:
    """A port bound and never listened on: every connection to it is refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def test_a_bench_of_refused_connections(
    workdir: Path,  # noqa: F811 (fixture)
    refused_port: int,
    tmp_path: Path,
) -> None:
    done = bench(
        workdir, "benchtests.py", "Bench.test_get", "-u", f"http://127.0.0.1:{refused_port}"
    )
    assert "Connection refused" in done.stdout + done.stderr
    target = tmp_path / "report"
    result = CliRunner().invoke(
        report_command, ["--html", "-r", str(target), str(workdir / "bench.xml")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((target / "summary.json").read_text())
    requests = summary["totals"]["requests"]
    assert requests > 0 and summary["totals"]["requests_error"] == requests

    # the headline: every response an error, so the standard Apdex is 0
    assert summary["apdex"] == {
        "t": 1.5,
        "satisfied": 0,
        "tolerating": 0,
        "frustrated": requests,
        "score": 0.0,
        "label": "UNACCEPTABLE",
    }
    html = (target / "index.html").read_text()
    cards = re.findall(
        r'<div class="card ([^"]*)"><span class="value">([^<]*)</span>'
        r'<span class="label">([^<]*)</span>',
        html,
    )
    apdex = [card for card in cards if card[2].startswith("Apdex")]
    assert apdex == [("r-U", "0.000", "Apdex: UNACCEPTABLE (T=1.5 s, errors frustrated)")]
    assert not any("Excellent" in label for _c, _v, label in cards)
    # FunkLoad's tables keep FunkLoad's score: fast errors are "satisfied" there
    rst = (target / "index.rst").read_text()
    page_rows = rst.split("Page stats", 1)[1]
    assert re.search(r"^\s+1\s+1\.000\s+Excellent", page_rows, re.M)

    # errors by kind: one kind for the requests, one for the tests, trimmed
    kinds = summary["error_kinds"]
    assert [(k["what"], k["kind"], k["result"]) for k in kinds] == [
        ("request", "ConnectionRefusedError", "Error"),
        ("test", "ConnectionRefusedError", "Error"),
    ]
    assert kinds[0]["count"] == requests
    assert kinds[1]["count"] == summary["totals"]["tests_error"] > 0
    assert kinds[0]["sample_url"] == f"http://127.0.0.1:{refused_port}/ok"
    for kind in kinds:
        assert kind["traceback"].startswith("ConnectionRefusedError: [Errno 111]")
        assert "/marteau/" not in kind["traceback"] and str(REPO) not in kind["traceback"]
        assert str(workdir) not in kind["traceback"]
    assert '  File "benchtests.py", line' in kinds[1]["traceback"]
    # FunkLoad's group keeps the raw traceback in summary.json and index.rst only: Marteau's
    # frames (absolute paths, or relative to the package's folder from the compiled engine)
    assert "marteau/engine/" in summary["errors"][0]["traceback"]
    shown = html.split('<section id="errors">')[1]
    assert "marteau/engine/" not in shown and str(workdir) not in shown
    table = tables_of(html)["Errors by kind"]
    assert table[1][:4] == ["requests", "ConnectionRefusedError", "Error", str(requests)]


def _fast_bench(path: Path) -> Path:
    """A FunkLoad result file whose responses take 0.2 and 0.4 ms."""
    config = {
        "id": "test_fast",
        "class": "Fast",
        "method": "test_fast",
        "module": "test_Fast",
        "cycles": "[1]",
        "duration": "10",
        "server_url": "http://127.0.0.1:1",
    }
    lines = ['<funkload version="1.17.2" time="2026-01-01T10:00:00.000000">']
    lines += [f'<config key="{k}" value="{v}" />' for k, v in config.items()]
    for i in range(40):
        for number, (url, duration) in enumerate((("/a", 0.0002), ("/b", 0.0004)), 1):
            lines.append(
                f'<response cycle="000" cvus="001" thread="000" suite="Fast" name="test_fast" '
                f'step="{number:03d}" number="001" type="get" result="Successful" url="{url}" '
                f'code="200" description="{url}" time="{1000 + i * 0.1 + number * 0.01}" '
                f'duration="{duration}" />'
            )
    path.write_text("\n".join(lines + ["</funkload>"]) + "\n")
    return path


def test_sub_millisecond_times_keep_their_digits(tmp_path: Path) -> None:
    source = _fast_bench(tmp_path / "fast.xml")
    target = tmp_path / "report"
    result = CliRunner().invoke(report_command, ["--html", "-r", str(target), str(source)])
    assert result.exit_code == 0, result.output
    html = (target / "index.html").read_text()
    tables = tables_of(html)
    rows = tables["Request stats (times in ms)"]
    header = rows[0]
    row = dict(zip(header, rows[1], strict=True))
    assert (row["MIN"], row["MAX"], row["P10"], row["P95"]) == ("0.200", "0.400", "0.200", "0.400")
    assert row["AVG"] == "0.300"
    assert "P95 request" in html and "0.400 ms" in html  # the headline card
    # "Slowest requests": the two requests apart, in ms
    slowest = re.findall(
        r'<tr><td>(\d{3})</td><td class="rating[^"]*">\w+</td>\s*<td class="num">([^<]*)</td>',
        html.split('id="slowest"')[1],
    )
    assert slowest == [("002", "0.400"), ("001", "0.200")]
    assert ">0.000<" not in html
    # FunkLoad's index.rst keeps FunkLoad's digits: 0.000 s
    rst = (target / "index.rst").read_text()
    assert re.search(r"^\s+1\s+1\.000\s+Excellent\s+8\.000\s+.*\s0\.000\s+0\.000\s", rst, re.M)


def test_charts_draw_durations_in_milliseconds(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The candlesticks' axis is in ms: 0.2 and 0.4 ms are apart, not both at 0.000."""
    drawn = {}

    def keep(fig, directory, name):  # type: ignore[no-untyped-def]
        ax = fig.axes[0]
        drawn[name] = (ax.get_ylabel(), [line.get_ydata() for line in ax.get_lines()])
        return f"{name}.png"

    monkeypatch.setattr(charts, "save", keep)
    candles = [{"cvus": 1, "min": 0.0002, "avg": 0.0003, "p10": 0.0002, "p50": 0.0002}]
    candles[0].update({"p90": 0.0004, "p95": 0.0004, "p99": 0.0004})
    charts.candle_chart(str(tmp_path), "requests", "Request response time", candles)
    label, lines = drawn["requests"]
    assert label == "response time (ms)"
    # AVG, P95 and P99 marks at 0.3 and 0.4 ms, on an axis that ends below 1 ms
    assert sorted({round(float(v), 6) for y in lines for v in y}) == [0.3, 0.4]
    assert milliseconds(0.0002) == "0.200" and milliseconds(1.49) == "1,490"
