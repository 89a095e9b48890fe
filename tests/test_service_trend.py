"""Runs side by side: each job's key figures from its report's summary.json (read
bounded, its numbers checked), the project its runs form, the change from the
project's previous successful run flagged past `.marteau.yml`'s tolerance, and the
diff and trend reports the worker writes; through a worker in this process, then
through a real `marteau serve` (uvicorn), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from marteau.errors import MarteauError  # noqa: E402
from marteau.orchestration.project import load_config  # noqa: E402
from marteau.service import comparisons, run_figures  # noqa: E402
from marteau.service.accounts import create_user  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import Job, Node  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from tests.service_helpers import (  # noqa: E402
    FAKE_RUN,
    Service,
    add_job,
    make_project,
    real_summary,
    run_queue,
    tar_of,
    wait_for,
    wait_job,
)
from tests.support.browser import CHROMIUM, PHONE, open_watched_page

# -- the summary, read as untrusted -------------------------------------------------


def test_key_figures_of_a_real_summary(tmp_path: Path) -> None:
    real_summary(tmp_path, 1.0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    figures, rows = run_figures.read_report_figures(tmp_path)
    overall = summary["overall"]["requests"]
    assert figures.peak_rps == max(c["requests"]["rps"] for c in summary["cycles"])
    assert figures.peak_rps > overall["rps"]  # the best cycle, not the bench's mean
    assert figures.p95 == overall["percentiles"]["p95"] > 0
    assert figures.error_percent == overall["error_percent"] > 0
    assert figures.apdex == summary["apdex"]["score"]
    cycles = [c["cvus"] for c in summary["cycles"] if c["requests"]]
    assert rows is not None and [r["cvus"] for r in rows.requests] == cycles == [2, 4]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"apdex": {"score": NaN}}', "NaN is not a number JSON allows"),
        ('{"apdex": {"score": -Infinity}}', "-Infinity is not a number JSON allows"),
        ("[" * 100_000, "not JSON"),
        ("{'not': 'json'}", "not JSON"),
    ],
)
def test_a_summary_that_is_not_plain_json_gives_no_figures(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(run_figures.Unreadable, match=problem):
        run_figures.read_report_figures(tmp_path)


def test_a_summary_is_read_only_within_its_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"apdex": {"score": 0.5}}' + " " * 100)
    assert run_figures.read_json(path, path.stat().st_size) == {"apdex": {"score": 0.5}}
    with pytest.raises(run_figures.Unreadable, match="bytes, more than the 100 read"):
        run_figures.read_json(path, 100)
    assert run_figures.MAX_SUMMARY == 32 * 2**20


def test_figures_of_the_wrong_type_or_range_are_dropped(tmp_path: Path) -> None:
    hostile = {
        "cycles": [{"requests": {"rps": 123.25}}, {"requests": {"rps": True}}, "cycle"],
        "overall": {
            "requests": {"rps": "12", "error_percent": 250.0, "percentiles": {"p95": -1.0}}
        },
        "apdex": {"score": 7},
    }
    # 1e400 is valid JSON that Python reads as infinity
    (tmp_path / "summary.json").write_text(json.dumps(hostile).replace("123.25", "1e400"))
    figures, rows = run_figures.read_report_figures(tmp_path)
    assert figures == run_figures.KeyFigures(None, None, None, None) and not figures.any()
    assert rows is None  # not a summary's layout
    real_summary(tmp_path, 1.0)  # a real one whose rows were tampered with
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["cycles"][0]["pages"]["avg"] = "nan"  # float("nan") would pass diff's reader
    summary["cycles"][1]["requests"]["percentiles"] = {f"p{i}": 1.0 for i in range(10_000)}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    figures, rows = run_figures.read_report_figures(tmp_path)
    assert figures.any() and rows is None
    del summary["cycles"][0]["pages"]["avg"]
    summary["cycles"][0]["pages"]["avg"] = 0.25
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    _figures, rows = run_figures.read_report_figures(tmp_path)
    assert rows is not None and "p9999" not in rows.requests[1]  # unknown columns dropped
    assert all(math.isfinite(v) for r in rows.requests for k, v in r.items() if k != "rating")


def test_figures_and_changes_as_people_read_them() -> None:
    figures = run_figures.KeyFigures(1234.4, 0.3124, 0.1, 0.9412)
    assert comparisons.headline(figures) == (
        "peak 1,234 req/s, p95 312 ms, errors 0.10%, Apdex 0.94"
    )
    assert comparisons.headline(run_figures.KeyFigures(12.34, 2.5, None, None)) == (
        "peak 12.3 req/s, p95 2.50 s"
    )
    changes = comparisons.compare(run_figures.KeyFigures(1000.0, 0.2314, 0.0, 0.95), figures, 10.0)
    assert {name: comparisons.change_text(name, c) for name, c in changes.items()} == {
        "peak_rps": "+23%",
        "p95": "+35%",
        "error_percent": "+0.10 pts",  # from no error at all: in points
        "apdex": "-0.01",  # a score: in points
    }
    assert [name for name, c in changes.items() if comparisons.flagged(c)] == [
        "peak_rps",
        "p95",
        "error_percent",
    ]
    assert (changes["peak_rps"]["class"], changes["p95"]["class"]) == ("better", "worse")
    text = comparisons.flagged_text(changes)
    assert text == "peak_rps:+23%:better;p95:+35%:worse;error_percent:+0.10 pts:worse"
    assert comparisons.flagged_changes(text)["p95"] == {"change": "+35%", "class": "worse"}
    comparison = {"job": 41, "tolerance": 10.0, "changes": changes}
    assert comparisons.short_change(figures, comparison) == "p95 312 ms, +35% vs job #41"
    assert comparisons.changes_line(comparison) == (
        "vs job #41 (tolerance 10%): peak req/s +23% (better), p95 +35% (worse), "
        "errors +0.10 pts (worse), Apdex -0.01"
    )


def test_a_project_is_its_owners_name_or_else_its_source() -> None:
    def key(owner: int, name: str | None, kind: str, url: str, archive: str | None = None):  # type: ignore[no-untyped-def]
        job = Job(source_kind=kind, source_url=url, archive_name=archive)
        return comparisons.project_key(owner, name, job)

    shop = key(1, None, "git", "https://git.example.org/shop.git")
    assert shop == key(1, None, "git", "https://git.example.org/shop/")  # one repository
    assert shop != key(2, None, "git", "https://git.example.org/shop.git")  # its owner's
    assert shop != key(1, None, "git", "https://git.example.org/shop2.git")
    named = key(1, "shop", "git", "https://git.example.org/shop.git")
    assert named != shop and named == key(1, "shop", "archive", "source/x", "x.tar.gz")
    upload = key(1, None, "archive", "source/shop", "shop-v2.tar.gz")  # its top folder
    assert upload == key(1, None, "archive", "source/shop", "shop-v3.zip")
    flat = key(1, None, "archive", "source", "shop.tar.gz")  # no top folder: its file name
    assert flat != key(1, None, "archive", "source", "cart.tar.gz")
    assert len({shop, upload, flat, key(1, None, "path", "/srv/shop")}) == 4
    assert len(shop) == 32


# -- .marteau.yml's compare key ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tolerance"),
    [("{tolerance: 15%}", 15.0), ("{tolerance: 2.5}", 2.5), ("{tolerance: '0 %'}", 0.0)],
)
def test_compare_sets_the_tolerance(tmp_path: Path, value: str, tolerance: float) -> None:
    project = load_config(make_project(tmp_path, compare=value) / ".marteau.yml")
    assert project.tolerance == tolerance


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", ":3: key 'compare': expected a map such as {tolerance: 10%}, got 5"),
        ("{tolerence: 5%}", ":3: key 'compare': unknown key 'tolerence' (known keys: tolerance)"),
        ("{tolerance: lots}", ":3: key 'compare': tolerance: expected a percentage from 0 to"),
        ("{tolerance: -5%}", "got '-5%'"),
        ("{tolerance: 1001}", "got 1001"),
        ("{tolerance: .nan}", "got nan"),
        ("{tolerance: true}", "got True"),
    ],
)
def test_a_bad_compare_names_file_key_and_line(tmp_path: Path, value: str, expected: str) -> None:
    path = make_project(tmp_path, compare=value) / ".marteau.yml"
    with pytest.raises(MarteauError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:3: "), caught.value
    assert expected in str(caught.value)


# -- a project's runs, through a worker ----------------------------------------------


def trend_dir(settings: Settings, job_id: int) -> Path:
    return settings.job_dir(job_id) / "report" / "trend"


def _queue(db: Database, owner_id: int, project: Path, label: str) -> int:
    with db.write() as session:
        return add_job(session, owner_id, project, label)


def test_runs_of_a_project_are_compared_diffed_and_trended(tmp_path: Path, db_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        run_command=FAKE_RUN.split(),
        poll_interval=0.05,
        lease_ttl=10,
        kill_grace=2,
    )
    db = Database(db_url)
    upgrade(db, default_node=False)
    project = make_project(tmp_path / "shop", name="shop", compare="{tolerance: 10%}")
    with db.write() as session:
        alice = create_user(session, "alice@example.org", "alice-password").id
        bob = create_user(session, "bob@example.org", "bob-password").id
        session.add(Node(name="n1", pool="marteau", vars={}, created=time.time()))
    runs = {}
    for name, owner, label in [
        ("first", alice, "slower=1"),
        ("failed", alice, "exit=1"),
        ("slower", alice, "slower=1.35"),
        ("bob", bob, "slower=2"),  # the same name, another owner: another project
        ("close", alice, "slower=1.4"),
    ]:
        runs[name] = run_queue(settings, db, _queue(db, owner, project, label))
    first, failed, slower, bob_run, close = (runs[n] for n in runs)
    assert [r.state for r in runs.values()] == ["succeeded", "failed"] + ["succeeded"] * 3
    assert first.project_key == slower.project_key == close.project_key != bob_run.project_key
    assert first.tolerance == 10.0 and first.comparison is None and bob_run.comparison is None
    assert failed.p95 is None and failed.comparison is None  # no report, no figures

    # the change from the previous successful run (the failed one is skipped)
    comparison = slower.comparison
    assert (comparison["job"], comparison["tolerance"]) == (first.id, 10.0)
    p95 = comparison["changes"]["p95"]
    assert p95["delta"] == pytest.approx(slower.p95 - first.p95)
    assert p95["percent"] == pytest.approx(35.0, abs=0.01)
    assert p95["class"] == "worse" and comparisons.flagged(p95)
    rate = comparison["changes"]["peak_rps"]
    assert rate["percent"] == 0.0 and not comparisons.flagged(rate)  # the same requests, slower
    assert comparisons.short_change(comparisons.figures_of(slower), comparison) == (
        f"p95 {slower.p95:.2f} s, +35% vs job #{first.id}"
    )
    # 1.4 / 1.35: +3.7%, within the tolerance: shown, not flagged
    p95 = close.comparison["changes"]["p95"]
    assert close.comparison["job"] == slower.id and p95["class"] == "same"
    assert not comparisons.flagged(p95) and comparisons.change_text("p95", p95) == "+4%"

    # the reports, in the job's report folder, linking the runs' reports
    diff = settings.job_dir(slower.id) / "report" / "diff"
    assert slower.comparison["diff"] == "report/diff/"
    data = json.loads((diff / "diff.json").read_text())
    assert data["reference"]["link"] == f"../../../{first.id}/report/index.html"
    assert data["challenger"]["link"] == "../index.html"
    p95_rows = [row["metrics"]["p95"]["percent"] for row in data["requests"]]
    assert p95_rows and all(p == pytest.approx(35.0, abs=0.01) for p in p95_rows)
    trend = json.loads((trend_dir(settings, close.id) / "trend.json").read_text())
    assert [b["name"] for b in trend["benches"]] == [
        f"job {first.id}",
        f"job {slower.id}",
        f"job {close.id}",
    ]
    assert close.comparison["runs"] == 3 and close.comparison["trend"] == "report/trend/"
    assert not (settings.job_dir(first.id) / "report" / "trend").exists()  # a single run
    trend_bytes = sum(p.stat().st_size for p in trend_dir(settings, close.id).rglob("*"))
    assert close.disk_bytes >= trend_bytes > 0  # the reports count in the job's disk use
    with db.read() as session:
        runs_seen = comparisons.project_runs(session, close.project_key, close.id, limit=2)
    assert [r["id"] for r in runs_seen] == [slower.id, close.id]  # the newest, oldest first
    assert runs_seen[1]["key_figures"]["p95"] == close.p95
    db.dispose()


# -- through `marteau serve` ----------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, module_db_url: str):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("service")
    svc = Service(base / "data", base / "locks", workers=1, database_url=module_db_url)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def shop_runs(service, alice, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:  # type: ignore[no-untyped-def]
    """Two runs of alice's project `shop` (uploaded), the second 50% slower."""
    project = make_project(
        tmp_path_factory.mktemp("shop") / "shop", name="shop", compare="{tolerance: 20%}"
    )
    runs = []
    for label in ("slower=1", "slower=1.5"):
        r = alice.post(
            "/api/jobs/upload",
            files={"archive": ("shop.tar.gz", tar_of(project, "shop"), "application/gzip")},
            data={"label": label},
        )
        assert r.status_code == 201, r.text
        runs.append(wait_job(alice, r.json()["id"]))
    # the worker writes the diff and trend reports once the job has ended and its
    # nodes are free
    runs[1] = wait_for(
        lambda: (job := alice.get(f"/api/jobs/{runs[1]['id']}").json())["trend_url"] and job,
        timeout=60,
        what="the second run's trend report",
    )
    return runs


def test_the_api_lists_figures_changes_and_the_project_trend(service, alice, shop_runs) -> None:  # type: ignore[no-untyped-def]
    first, second = shop_runs
    assert first["state"] == second["state"] == "succeeded"
    listed = {job["id"]: job for job in alice.get("/api/jobs").json()["jobs"]}
    row = listed[second["id"]]
    assert row["key_figures"] == second["key_figures"] and "comparison" not in row
    assert (row["compared_to"], row["flagged"]) == (
        first["id"],
        {"p95": {"change": "+50%", "class": "worse"}},
    )
    figures = second["key_figures"]
    assert set(figures) == {"peak_rps", "p95", "error_percent", "apdex"}
    assert figures["p95"] == pytest.approx(first["key_figures"]["p95"] * 1.5)
    comparison = second["comparison"]
    assert (comparison["job"], comparison["tolerance"]) == (first["id"], 20.0)
    assert comparison["changes"]["p95"]["percent"] == pytest.approx(50.0)
    assert comparison["changes"]["p95"]["class"] == "worse"
    assert comparison["changes"]["peak_rps"]["class"] == "same"
    base = f"{service.url}/jobs/{second['id']}"
    assert (second["diff_url"], second["trend_url"]) == (
        f"{base}/report/diff/",
        f"{base}/report/trend/",
    )
    assert first["comparison"] is None and first["diff_url"] is None
    assert first["project_key"] == second["project_key"]

    trend = alice.get(f"/api/jobs/{second['id']}/trend").json()
    assert [run["id"] for run in trend["runs"]] == [first["id"], second["id"]]
    assert trend["runs"][1]["key_figures"] == figures and trend["project"] == "shop"
    assert (
        alice.get(f"/api/jobs/{first['id']}/trend?limit=1").json()["runs"][0]["id"]
        == (
            first["id"]  # up to the job asked for
        )
    )
    assert alice.get(f"/api/jobs/{second['id']}/trend?limit=1000").status_code == 422
    assert alice.get("/api/jobs/999999/trend").status_code == 404

    # the reports, served from the job's report folder, link the runs' own reports
    diff = alice.get(f"/jobs/{second['id']}/report/diff/")
    assert diff.status_code == 200 and f"/{first['id']}/report/index.html" in diff.text
    reference = alice.get(f"/jobs/{second['id']}/report/diff/../../../{first['id']}/report/")
    assert "fake report" in reference.text
    trend_page = alice.get(f"/jobs/{second['id']}/report/trend/")
    assert trend_page.status_code == 200 and "Trend" in trend_page.text

    page = alice.get(f"/jobs/{second['id']}").text
    assert "Key figures" in page and f"Diff vs job #{first['id']}" in page
    assert "+50%" in page and "Trend (2 runs)" in page
    dashboard = alice.get("/").text
    p95 = f"{figures['p95']:.2f} s"
    assert p95 in dashboard and 'class="change change-worse"' in dashboard


def test_the_pages_show_figures_changes_diff_and_trend_in_chromium(service, shop_runs) -> None:  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api")

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    first, second = shop_runs
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser, page = open_watched_page(playwright, problems)
        page.goto(service.url + "/login")
        page.fill("input[name=email]", "alice@example.org")
        page.fill("input[name=password]", "alice-password")
        page.click("form[action='/login'] button")
        page.wait_for_url(service.url + "/")
        p95 = f"{second['key_figures']['p95']:.2f} s"
        row = page.locator("table.jobs tr", has=page.locator(f"a[href='/jobs/{second['id']}']"))
        cell = row.locator("td.figure-p95")
        assert cell.inner_text() == f"{p95} +50%"
        assert cell.locator(".change-worse").get_attribute("title") == (
            f"worse than job #{first['id']}, past the project's tolerance"
        )
        assert row.locator("td.figure-peak_rps").inner_text().endswith(" req/s")  # unflagged
        page.set_viewport_size(PHONE)  # a phone keeps the job, its state and its p95
        assert cell.is_visible() and not row.locator("td.figure-peak_rps").is_visible()

        page.click(f"a[href='/jobs/{second['id']}']")
        figures = page.locator("#key-figures tbody tr", has_text="p95").locator("td")
        first_p95 = f"{first['key_figures']['p95']:.2f} s"
        assert figures.all_inner_texts() == [p95, first_p95, "+50%"]
        runs = page.locator("#project-runs tbody tr")
        assert runs.count() == 2 and runs.first.locator("td").first.inner_text() == (
            f"#{second['id']}"
        )
        page.click("#diff-link")
        page.wait_for_url(f"{service.url}/jobs/{second['id']}/report/diff/")
        assert "P95" in page.content()
        page.go_back()
        page.click("#trend-link")
        page.wait_for_url(f"{service.url}/jobs/{second['id']}/report/trend/")
        page.click(f"a[href$='/{first['id']}/report/index.html']")  # a run of the trend
        page.wait_for_url(f"{service.url}/jobs/{first['id']}/report/index.html")
        assert "fake report" in page.content()
        browser.close()
    assert problems == []
