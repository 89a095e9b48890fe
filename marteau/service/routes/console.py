"""A job's console: the whole text from an offset (`GET .../console`, and the job
page's first screen), and its lines live as server-sent events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from marteau.service.db import Database
from marteau.service.models import FINISHED, Job
from marteau.service.routes.deps import ApiAuth, Config, Db
from marteau.service.routes.jobs import get_job
from marteau.service.settings import Settings
from marteau.service.worker import console_path

router = APIRouter()


def read_console(settings: Settings, job_id: int, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of the job's console from `offset`, and the offset after them."""
    path = console_path(settings, job_id)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def _state(db: Database, job_id: int) -> str | None:
    with db.read() as session:
        return session.scalar(select(Job.state).where(Job.id == job_id))


@router.get("/api/jobs/{job_id}/console", tags=["jobs"], response_class=PlainTextResponse)
def api_console(job_id: int, auth: ApiAuth, db: Db, settings: Config, offset: int = 0) -> Response:
    """The console from byte `offset`; X-Console-Offset is where to go on from."""
    job = get_job(db, job_id)
    data, end = read_console(settings, job_id, max(0, offset), 4 * 2**20)
    return PlainTextResponse(
        data.decode("utf-8", "replace"),
        headers={"X-Console-Offset": str(end), "X-Job-State": job.state},
    )


def _lines(pending: bytes) -> tuple[list[str], bytes]:
    """The complete lines of `pending` as `line` events, and what follows the last one."""
    *lines, rest = pending.split(b"\n")
    events = []
    for line in lines:
        text = line.decode("utf-8", "replace").replace("\r", "")
        events.append(f"event: line\ndata: {text}\n\n")
    return events, rest


async def _events(
    request: Request, db: Database, settings: Settings, job_id: int, start: int
) -> AsyncIterator[str]:
    position = start
    pending = b""
    checked = 0.0
    yield "retry: 1000\n\n"
    while True:
        # read in the event loop: a console is a local file, and a thread-pool
        # round trip per poll queues behind busy request threads under load
        data, end = read_console(settings, job_id, position, 2**16)
        if data:
            pending += data
            position = end
            out, pending = _lines(pending)
            if out:
                consumed = position - len(pending)
                out[-1] = out[-1][:-1] + f"id: {consumed}\n\n"
                yield "".join(out)
            continue
        now = time.monotonic()
        if now - checked >= 0.5:
            checked = now
            state = await run_in_threadpool(_state, db, job_id)
            if state is None or state in FINISHED:
                data, end = await run_in_threadpool(read_console, settings, job_id, position, 2**20)
                if data:
                    continue
                if pending:
                    yield f"event: line\ndata: {pending.decode('utf-8', 'replace')}\nid: {position}\n\n"
                yield f"event: end\ndata: {state or 'deleted'}\n\n"
                return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)


@router.get("/api/jobs/{job_id}/console/stream", tags=["jobs"])
async def api_console_stream(
    job_id: int, request: Request, auth: ApiAuth, db: Db, settings: Config, offset: int = 0
) -> StreamingResponse:
    """Server-sent events: one `line` event per console line (its id is the byte
    offset after it, for Last-Event-ID), then an `end` event with the job's state."""
    await run_in_threadpool(get_job, db, job_id)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else max(0, offset)
    return StreamingResponse(
        _events(request, db, settings, job_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
