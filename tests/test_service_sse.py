"""The console stream (server-sent events) reads the console file in pieces: a console
larger than a piece arrives whole, line by line and in order, lines cut by a piece's
end included, and resumes from Last-Event-ID."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from marteau.service import accounts  # noqa: E402
from marteau.service.db import Database, upgrade  # noqa: E402
from marteau.service.models import GIT, SUCCEEDED, Job  # noqa: E402
from marteau.service.settings import Settings  # noqa: E402
from marteau.service.worker import console_path  # noqa: E402
from tests.support.live_app import PASSWORD, Uvicorn  # noqa: E402

LINES = 5000  # about 290 kB: several of the stream's reads


def events(answer: httpx.Response) -> list[tuple[str, str, str]]:
    """(event, data, id) of each server-sent event."""
    out = []
    for block in answer.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("data", ""), fields.get("id", "")))
    return out


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, default_node=False)
    yield database
    database.dispose()


def test_a_long_console_streams_whole_and_resumes(tmp_path: Path, db: Database) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url)
    now = time.time()
    with db.write() as session:
        user = accounts.create_user(session, "reader@example.org", PASSWORD)
        job = Job(
            owner_id=user.id,
            source_kind=GIT,
            source_url="https://git.example.org/p.git",
            state=SUCCEEDED,
            created=now,
            started=now,
            ended=now + 1,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    lines = [f"line {i:05d} " + "é" * (i % 40) for i in range(LINES)]
    path = console_path(settings, job_id)
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\nno newline at the end", encoding="utf-8")

    with Uvicorn(settings, db) as web:
        client = web.client("reader@example.org")
        stream = f"/api/jobs/{job_id}/console/stream"
        received = events(client.get(stream))
        assert [data for kind, data, _ in received if kind == "line"] == [
            *lines,
            "no newline at the end",
        ]
        assert received[-1] == ("end", SUCCEEDED, "")
        middle = next(i for kind, _, i in received[LINES // 2 :] if i)
        resumed = events(client.get(stream, headers={"Last-Event-ID": middle}))
    tail = [data for kind, data, _ in resumed if kind == "line"]
    assert tail[-1] == "no newline at the end"
    assert tail[0] == lines[LINES - len(tail) + 1]
    assert len(path.read_bytes()[int(middle) :].decode().splitlines()) == len(tail)
