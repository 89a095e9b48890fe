"""Report benchmark: `marteau report --html` on 1 and 10 million requests.

Generates synthetic bench results of 4 nodes and 5 cycles as Marteau
compact files (``.mrt``, what `marteau bench` writes on each node), then
times ``marteau report --html`` on them in a child process: wall time and
peak memory (the child's ``ru_maxrss``).  It also writes one FunkLoad XML
file (exported from a node's compact file) and times `marteau.results.load`
on it, for the XML read rate, and the same records as FunkLoad 1.x wrote
XML-RPC calls (a stray ``"`` after each ``<response />``, which the reader's
tolerant path reads) for that path's rate.  Prints the figures and their ratio to the
targets of the report issue: <= 15 s and <= 2 GB for 10 million requests
on a 2-core machine (and an ``index.html`` of <= 5 MB, interactive charts
included), >= 250,000 FunkLoad-XML responses read per second.  The load
average is printed with each figure: on a shared machine compare CPU
seconds, not wall time.

Usage: ``python bench/report.py [--sizes 1000000,10000000] [--xml-requests 1000000]
[--tolerant-requests 200000] [--keep DIR] [--profile]``.  ``--profile`` runs the largest report once more
under cProfile and prints the top functions (cumulative time).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marteau.results.compact import RESPONSES, SAMPLES, TESTS, CompactWriter  # noqa: E402
from marteau.results.records import (  # noqa: E402
    RESPONSE_FIELDS,
    SAMPLE_FIELDS,
    TEST_FIELDS,
    numpy_dtype,
)

NODES = 4
CYCLES = (10, 20, 30, 40, 50)  # users per node and cycle
DURATION = 60.0  # seconds recorded per cycle
PAUSE = 5.0  # seconds between cycles (ramp-up, not recorded)
TARGET_SECONDS = 15.0
TARGET_BYTES = 2 * 1024**3
TARGET_XML_RATE = 250_000
TARGET_HTML_BYTES = 5 * 10**6  # index.html with its inline charts, data and chart library
START = datetime.datetime(2026, 11, 27, 3, 0, 0)

# One test = 5 pages; a page is a get or post, then resources.
# (step, number, type, url, description)
SCRIPT = (
    (1, 1, "get", "/", "Home page"),
    (1, 2, "image", "/static/logo.png", ""),
    (1, 3, "link", "/static/site.css", ""),
    (2, 1, "post", "/login", "Log in"),
    (2, 2, "get", "/account", "Redirect to the account"),
    (3, 1, "get", "/search?q=hammer", "Search"),
    (3, 2, "image", "/static/thumb.png", ""),
    (4, 1, "get", "/item/42", "Item page"),
    (4, 2, "image", "/static/item42.jpg", ""),
    (4, 3, "image", "/static/item42-2.jpg", ""),
    (5, 1, "post", "/cart", "Add to cart"),
)
# typical latency (median, seconds) of each request at low load
BASE_LATENCY = np.array(
    [0.040, 0.004, 0.003, 0.090, 0.030, 0.150, 0.005, 0.060, 0.006, 0.006, 0.120]
)
ERROR_BODY = (
    "<html><head><title>500 Internal Server Error</title></head><body>"
    "<h1>Internal Server Error</h1><script>alert('not escaped')</script></body></html>"
)


def _strings() -> tuple[list[str], dict[str, int]]:
    table = [""]
    for _, _, kind, url, description in SCRIPT:
        for text in (kind, url, description, "http://localhost:8080" + url):
            if text and text not in table:
                table.append(text)
    return table, {text: i for i, text in enumerate(table)}


def write_node(path: Path, node: int, requests: int, seed: int) -> int:
    """One node's compact file with about `requests` responses; returns the exact count."""
    rng = np.random.default_rng(seed)
    table, ids = _strings()
    steps = len(SCRIPT)
    config = {
        "id": "test_shop",
        "class": "Shop",
        "method": "test_shop",
        "module": "test_Shop",
        "class_title": "Shop load test",
        "class_description": "Browse, log in, search and buy.",
        "description": "A synthetic shop bench for bench/report.py.",
        "cycles": str(list(CYCLES)),
        "duration": str(int(DURATION)),
        "sleep_time": "0.0",
        "sleep_time_min": "0.0",
        "sleep_time_max": "0.0",
        "startup_delay": "0.0",
        "cycle_time": str(PAUSE),
        "server_url": "http://localhost:8080/",
        "node": f"node{node + 1}",
        "marteau:time": START.isoformat(timespec="microseconds"),
        "meta:generator": "bench/report.py",
    }
    weights = np.array(CYCLES, dtype=float) / sum(CYCLES)
    start0 = START.timestamp()
    r_dtype = numpy_dtype(RESPONSE_FIELDS)
    t_dtype = numpy_dtype(TEST_FIELDS)
    s_dtype = numpy_dtype(SAMPLE_FIELDS)
    written = 0
    with CompactWriter(path, config) as writer:
        writer.strings(table[1:])
        writer.details(
            [
                {"headers": [["content-type", "text/html"]], "body": ERROR_BODY, "traceback": ""},
                {"headers": [], "body": "", "traceback": "Traceback: socket.timeout: timed out"},
            ]
        )
        for cycle, users in enumerate(CYCLES):
            tests = max(1, int(round(requests * weights[cycle] / steps)))
            n = tests * steps
            cycle_start = start0 + cycle * (DURATION + PAUSE)
            # each test: a thread, a start inside the window, 11 requests in a row
            thread = rng.integers(0, users, tests, dtype=np.uint32)
            load = 1.0 + 0.6 * cycle  # latency grows with the load
            lat = BASE_LATENCY[np.tile(np.arange(steps), tests)] * load
            duration = lat * rng.lognormal(0.0, 0.45, n)
            slow = rng.random(n) < 0.002  # a tail
            duration[slow] *= rng.uniform(5, 40, int(slow.sum()))
            offsets = np.cumsum(duration.reshape(tests, steps), axis=1) - duration.reshape(
                tests, steps
            )
            test_start = cycle_start + rng.uniform(0, DURATION - 2.0, tests)
            times = (test_start[:, None] + offsets).reshape(-1)
            r = np.zeros(n, dtype=r_dtype)
            r["time"] = times
            r["duration"] = duration
            r["cycle"] = cycle
            r["cvus"] = users
            r["thread"] = np.repeat(thread, steps)
            idx = np.tile(np.arange(steps), tests)
            r["step"] = np.array([s[0] for s in SCRIPT], np.uint32)[idx]
            r["number"] = np.array([s[1] for s in SCRIPT], np.uint16)[idx]
            r["type"] = np.array([ids[s[2]] for s in SCRIPT], np.uint32)[idx]
            r["url"] = np.array([ids[s[3]] for s in SCRIPT], np.uint32)[idx]
            r["description"] = np.array([ids[s[4]] if s[4] else 0 for s in SCRIPT], np.uint32)[idx]
            r["code"] = 200
            failure = rng.random(n) < 0.001 * (cycle + 1)
            r["code"][failure] = 500
            r["result"][failure] = 1
            r["detail"][failure] = 1
            error = rng.random(n) < 0.0002 * cycle
            r["code"][error] = -1
            r["result"][error] = 2
            r["detail"][error] = 2
            r["url"][error] = ids["http://localhost:8080" + SCRIPT[0][3]]
            # file order: by end of request, as the recorder writes them
            r = r[np.argsort(times + duration, kind="stable")]
            writer.records(RESPONSES, r.tobytes())
            written += n
            t = np.zeros(tests, dtype=t_dtype)
            t["time"] = test_start
            per_test = duration.reshape(tests, steps).sum(axis=1)
            t["duration"] = per_test
            t["connection_duration"] = per_test
            t["cycle"] = cycle
            t["cvus"] = users
            t["thread"] = thread
            bad = np.logical_or.reduce((failure | error).reshape(tests, steps), axis=1)
            t["result"] = np.where(bad, 1, 0)
            t["steps"] = 5
            t["requests"] = steps
            t["pages"] = 5
            t["redirects"] = 1
            t["images"] = 4
            t["links"] = 1
            writer.records(TESTS, t.tobytes())
            seconds = int(DURATION)
            s = np.zeros(seconds * 2, dtype=s_dtype)
            s["time"] = cycle_start + np.repeat(np.arange(seconds), 2)
            s["cpu_percent"] = rng.uniform(20, 50 + 8 * cycle, s.size)
            s["users"] = users
            s["worker"] = np.tile([0, 1], seconds)
            writer.records(SAMPLES, s.tobytes())
            writer.flush()
    return written


def generate(directory: Path, total: int) -> tuple[list[Path], int]:
    directory.mkdir(parents=True, exist_ok=True)
    paths, count = [], 0
    for node in range(NODES):
        path = directory / f"node{node + 1}.mrt"
        count += write_node(path, node, total // NODES, seed=1000 * total + node)
        paths.append(path)
    return paths, count


def _child_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def time_report(paths: list[Path], out: Path) -> tuple[float, int, float]:
    """Wall time, peak RSS and CPU time (with its chart workers) of `marteau report --html`."""
    if out.exists():
        shutil.rmtree(out)
    code = "import sys; from marteau.cli import main; sys.argv = ['marteau'] + sys.argv[1:]; main()"
    command = [sys.executable, "-c", code, "report", "--html", "-r", str(out)]
    command += [str(p) for p in paths]
    # fork a small helper so that ru_maxrss of children is this report only
    runner = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "w = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(rc, w, u.ru_maxrss * 1024, u.ru_utime + u.ru_stime)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner, *command], capture_output=True, text=True, check=True
    )
    rc, wall, peak, cpu = result.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"marteau report failed with exit code {rc}")
    return float(wall), int(peak), float(cpu)


def time_xml(xml: Path) -> tuple[int, float, float]:
    """(responses, wall seconds, CPU seconds) of marteau.results.load on a FunkLoad XML file."""
    code = (
        "import sys, time; from marteau.results import load\n"
        "t = time.perf_counter(); c = time.process_time(); rs = load(sys.argv[1])\n"
        "print(rs.responses.size, time.perf_counter() - t, time.process_time() - c)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(xml)], capture_output=True, text=True, check=True
    )
    count, seconds, cpu = result.stdout.split()
    return int(count), float(seconds), float(cpu)


def write_funkload_1x(source: Path, target: Path) -> None:
    """`source` as FunkLoad 1.x wrote XML-RPC calls: a stray ``"`` after each ``<response />``."""
    with source.open("rb") as lines, target.open("wb") as out:
        for line in lines:
            if line.startswith(b"<response ") and line.endswith(b" />\n"):
                line = line[:-1] + b'"\n'
            out.write(line)


def bench_tolerant(directory: Path, requests: int) -> dict[str, float]:
    """Read rate of the reader's tolerant path (FunkLoad 1.x XML-RPC records)."""
    from marteau.results.funkload_writer import export_xml

    directory.mkdir(parents=True, exist_ok=True)
    mrt, xml, old = directory / "node.mrt", directory / "export.xml", directory / "funkload-1x.xml"
    write_node(mrt, 0, requests, seed=11)
    export_xml(mrt, xml)
    write_funkload_1x(xml, old)
    os.sync()
    count, seconds, cpu = time_xml(old)
    print(
        f"\nFunkLoad 1.x XML-RPC records ({old.stat().st_size / 1e6:.0f} MB, tolerant path): "
        f"read {count:,} responses in {seconds:.2f} s wall ({cpu:.2f} s CPU): "
        f"{count / seconds:,.0f} responses/s ({count / cpu:,.0f}/s of CPU)"
    )
    return {"responses": count, "seconds": seconds, "cpu_seconds": cpu}


PHASES = (
    ("load_all", "results.merge.load_all (read + merge the nodes)"),
    ("compute", "report.stats.compute (FunkLoad's statistics)"),
    ("render_rst", "report.rst.render_rst"),
    ("build_summary", "report.summary.build_summary"),
    ("write_summary", "report.summary.write_summary"),
    ("_copy_results", "report.command._copy_results (copy inputs)"),
    ("render_html", "report.html.render_html (page + charts)"),
    ("aggregate", "  report.time_charts.aggregate (numpy, wall-clock charts)"),
    ("wait", "  report.chart_pool.Rendering.wait (charts drawn)"),
)


def profile(paths: list[Path], out: Path) -> None:
    """cProfile of the report in a fresh process: time per phase, then the top functions."""
    if out.exists():
        shutil.rmtree(out)
    code = (
        "import cProfile, pstats, sys\n"
        "from marteau.report.command import build_report\n"
        "cProfile.run('build_report(tuple(sys.argv[2:]), html=True, report_directory=sys.argv[1])',"
        " sys.argv[1] + '.prof')\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out), *map(str, paths)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import pstats

    stats = pstats.Stats(str(out) + ".prof")
    cumulative: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if "marteau" in filename:
            cumulative[name] = max(cumulative.get(name, 0.0), row[3])
    print("  phase                                              cumulative s")
    for name, label in PHASES:
        print(f"  {label:50s} {cumulative.get(name, 0.0):8.2f}")
    print()
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--xml-requests", type=int, default=1_000_000)
    parser.add_argument("--tolerant-requests", type=int, default=200_000)
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(args.keep or tempfile.mkdtemp(prefix="marteau-bench-report-"))
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, work directory {work}")
    figures: dict[str, object] = {}
    try:
        for size in sizes:
            t0 = time.perf_counter()
            paths, count = generate(work / f"results-{size}", size)
            print(
                f"\n{count:,} requests, {NODES} nodes x {len(CYCLES)} cycles "
                f"(generated in {time.perf_counter() - t0:.1f} s, "
                f"{sum(p.stat().st_size for p in paths) / 1e6:.0f} MB of .mrt)"
            )
            os.sync()  # the generated files' writeback must not be timed with the report
            load = os.getloadavg()[0]
            wall, peak, cpu = time_report(paths, work / f"report-{size}")
            html = (work / f"report-{size}" / "index.html").stat().st_size
            print(
                f"  marteau report --html: {wall:6.2f} s wall, {cpu:6.2f} s CPU (user+sys, "
                f"all processes), {peak / 1024**2:7.0f} MiB peak RSS, index.html "
                f"{html / 1e6:.2f} MB (load average {load:.1f} -> {os.getloadavg()[0]:.1f})"
            )
            scale = count / 10_000_000
            if scale >= 0.99:
                print(
                    f"  target <= {TARGET_SECONDS:.0f} s: {wall / TARGET_SECONDS:.2f} of it; "
                    f"target <= 2 GiB: {peak / TARGET_BYTES:.2f} of it; "
                    f"HTML target <= 5 MB: {html / TARGET_HTML_BYTES:.2f} of it"
                )
            figures[str(count)] = {
                "seconds": wall,
                "cpu_seconds": cpu,
                "peak_bytes": peak,
                "html_bytes": html,
                "load_average": load,
            }
        if args.xml_requests:
            t0 = time.perf_counter()
            from marteau.results.funkload_writer import export_xml

            xml_dir = work / "xml"
            xml_dir.mkdir(exist_ok=True)
            mrt = xml_dir / "node.mrt"
            write_node(mrt, 0, args.xml_requests, seed=7)
            xml = xml_dir / "funkload.xml"
            export_xml(mrt, xml)
            print(
                f"\nFunkLoad XML: {xml.stat().st_size / 1e6:.0f} MB "
                f"(written in {time.perf_counter() - t0:.1f} s)"
            )
            os.sync()
            count, seconds, cpu = time_xml(xml)
            rate = count / seconds
            print(
                f"  read {count:,} responses in {seconds:.2f} s wall ({cpu:.2f} s CPU): "
                f"{rate:,.0f} responses/s ({count / cpu:,.0f}/s of CPU); "
                f"target >= {TARGET_XML_RATE:,}/s: {rate / TARGET_XML_RATE:.2f}x"
            )
            figures["xml"] = {"responses": count, "seconds": seconds, "cpu_seconds": cpu}
        if args.tolerant_requests:
            figures["tolerant_xml"] = bench_tolerant(work / "xml-1x", args.tolerant_requests)
        if args.profile and sizes:
            biggest = max(sizes)
            print(f"\ncProfile of marteau report --html, {biggest:,} requests:")
            profile(sorted((work / f"results-{biggest}").glob("*.mrt")), work / "profiled")
        print("\n" + json.dumps(figures))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
