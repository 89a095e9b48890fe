"""The mail at the end of a job, received by a real SMTP server (aiosmtpd) on 127.0.0.1
(the queue on SQLite, then on PostgreSQL)."""

from __future__ import annotations

import time
from email import message_from_bytes
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

from marteau.service.accounts import create_user  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import Job, Node  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.service_helpers import add_job, make_project, start_worker  # noqa: E402


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _setup(
    tmp_path: Path,
    db_url: str,
    labels: tuple[str, ...] = ("sleep=0.05", "exit=1"),
    **config: object,
) -> tuple[Database, list[int]]:
    db = Database(db_url)
    upgrade(db, default_node=False)
    project = make_project(tmp_path / "project", name="shop", email="team@example.org", **config)
    with db.write() as session:
        user = create_user(session, "owner@example.org", "owner-password")
        session.add(Node(name="n1", pool="marteau", vars={}, created=time.time()))
        ids = [add_job(session, user.id, project, label) for label in labels]
    return db, ids


def _mailing_worker(tmp_path: Path, db_url: str, smtp_port: int, **env: str):  # type: ignore[no-untyped-def]
    """A `marteau worker --once` mailing through the SMTP server on `smtp_port`."""
    return start_worker(
        tmp_path / "data",
        tmp_path / "locks",
        "--once",
        "--base-url",
        "https://marteau.example.org",
        env={"MARTEAU_SMTP_HOST": "127.0.0.1", "MARTEAU_SMTP_PORT": str(smtp_port), **env},
        database_url=db_url,
    )


def test_mail_on_job_end_with_figures_and_report_link(smtp, tmp_path: Path, db_url: str) -> None:
    controller, inbox = smtp
    db, (good, bad) = _setup(tmp_path, db_url)
    worker = _mailing_worker(
        tmp_path, db_url, controller.port, MARTEAU_MAIL_SENDER="marteau@example.org"
    )
    assert worker.wait(timeout=120) == 0
    assert len(inbox.messages) == 2
    (sender, to, raw), (_, _, raw_bad) = inbox.messages
    assert sender == "marteau@example.org" and sorted(to) == [
        "owner@example.org",
        "team@example.org",
    ]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[marteau] shop: succeeded"
    body = mail.get_payload(decode=True).decode()
    assert f"Marteau job #{good} (shop) succeeded: done" in body
    assert "Tests: 40 (39 successful), STPS 3.900, errors 2.50%" in body
    assert "Pages: SPPS 12.250, p95 0.125 s, errors 0.00%, Apdex 0.970 Excellent" in body
    assert "Thresholds: passed" in body
    assert f"Report: https://marteau.example.org/jobs/{good}/report/" in body
    failed = message_from_bytes(raw_bad)
    assert failed["Subject"] == "[marteau] shop: failed"
    assert "the fake run failed with exit 1" in failed.get_payload(decode=True).decode()
    console = (tmp_path / "data" / "jobs" / str(good) / "console.log").read_text()
    assert "mail sent to owner@example.org, team@example.org" in console
    db.dispose()


def test_a_mail_that_cannot_be_sent_is_logged_and_the_result_stays(
    tmp_path: Path, db_url: str
) -> None:
    db, (good, _bad) = _setup(tmp_path, db_url)
    worker = start_worker(
        tmp_path / "data",
        tmp_path / "locks",
        "--once",
        env={"MARTEAU_SMTP_HOST": "127.0.0.1", "MARTEAU_SMTP_PORT": str(free_port())},
        database_url=db_url,
    )
    assert worker.wait(timeout=120) == 0
    with db.read() as session:
        assert session.get(Job, good).state == "succeeded"
    console = (tmp_path / "data" / "jobs" / str(good) / "console.log").read_text()
    assert "mail not sent to owner@example.org, team@example.org" in console
    db.dispose()


def test_the_mail_quotes_the_standard_apdex_where_errors_are_frustrated(tmp_path: Path) -> None:
    import json

    from marteau.service.mail import key_figures

    summary = tmp_path / "summary.json"
    excellent = {"score": 1.0, "label": "Excellent"}
    summary.write_text(
        json.dumps(
            {
                "overall": {"pages": {"spps": 2.0, "error_percent": 100.0, "apdex": excellent}},
                "apdex": {"score": 0.0, "label": "UNACCEPTABLE"},
            }
        )
    )
    (line,) = key_figures(summary)
    assert line.endswith("errors 100.00%, Apdex 0.000 UNACCEPTABLE")


def test_the_mail_carries_the_headline_and_the_change_from_the_last_run(
    smtp, tmp_path: Path, db_url: str
) -> None:
    """Two runs of one project, the second 35% slower: its mail says by how much."""
    import json

    from tests.service_helpers import real_summary

    controller, inbox = smtp
    db, _ids = _setup(tmp_path, db_url, ("slower=1", "slower=1.35"), compare="{tolerance: 10%}")
    worker = _mailing_worker(tmp_path, db_url, controller.port)
    assert worker.wait(timeout=180) == 0
    assert len(inbox.messages) == 2
    first, second = (message_from_bytes(raw) for _, _, raw in inbox.messages)
    # the figures as the report layer computes them for each run
    summaries = []
    for factor in (1.0, 1.35):
        (tmp_path / str(factor)).mkdir()
        real_summary(tmp_path / str(factor), factor)
        summaries.append(json.loads((tmp_path / str(factor) / "summary.json").read_text()))
    p95s = [f"{s['overall']['requests']['percentiles']['p95']:.2f} s" for s in summaries]
    summary = summaries[1]
    requests, p95 = summary["overall"]["requests"], p95s[1]
    peak = max(cycle["requests"]["rps"] for cycle in summary["cycles"] if cycle["requests"])
    assert first["Subject"] == f"[marteau] shop: succeeded, p95 {p95s[0]}"
    assert second["Subject"] == f"[marteau] shop: succeeded, p95 {p95}, +35% vs job #1"
    body = second.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert (
        f"Headline: peak {peak:.1f} req/s, p95 {p95}, errors {requests['error_percent']:.2f}%, "
        f"Apdex {summary['apdex']['score']:.2f}\n"
        "vs job #1 (tolerance 10%): peak req/s +0%, p95 +35% (worse), errors +0%, Apdex "
    ) in body
    assert "Diff vs job #1: https://marteau.example.org/jobs/2/report/diff/" in body
    assert "Trend: https://marteau.example.org/jobs/2/report/trend/" in body
    assert "Diff vs" not in first.get_payload(decode=True).decode()
    db.dispose()
