"""Routes for a job's live per-cycle figures: a JSON snapshot and a server-sent
event stream that pushes the whole table each time a node reports new figures."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from marteau.service.db import Database
from marteau.service.live_figures import FiguresReader, job_figures, with_totals
from marteau.service.models import FINISHED, Job
from marteau.service.routes.deps import ApiAuth, Config, Db
from marteau.service.worker import console_path

router = APIRouter(tags=["jobs"])
POLL = 0.25  # seconds between two reads of a running job's console
STATE_EVERY = 1.0  # seconds between two looks at the job's state
EVENT_EVERY = 1.0  # seconds at least between two figures events (each carries the charts)
# the report's chart script and library (marteau/report/static), for the live charts
CHART_ASSETS = {
    "uPlot.iife.min.js": "text/javascript",
    "marteau-charts.js": "text/javascript",
    "uPlot.min.css": "text/css",
}


def _state(db: Database, job_id: int) -> str | None:
    with db.read() as session:
        return session.scalar(select(Job.state).where(Job.id == job_id))


@router.get("/chart-assets/{name}", include_in_schema=False)
def chart_asset(name: str) -> FileResponse:
    """The job page's chart scripts: the very files the report inlines."""
    from marteau.report.interactive import STATIC

    if name not in CHART_ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(
        f"{STATIC}/{name}",
        media_type=CHART_ASSETS[name],
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/api/jobs/{job_id}/figures")
def api_figures(job_id: int, auth: ApiAuth, db: Db, settings: Config) -> dict:
    """The job's per-cycle figures so far: one row per cycle and node (users,
    requests/s, tests ok, failures, errors), as the nodes last reported them, and
    `totals`: the sums over the nodes of each cycle that several nodes ran."""
    state = _state(db, job_id)
    if state is None:
        raise HTTPException(404, f"no job {job_id}")
    figures = with_totals(job_figures(console_path(settings, job_id)))
    return {"job": job_id, "state": state, "figures": figures["rows"], "totals": figures["totals"]}


@router.get("/api/jobs/{job_id}/figures/stream")
async def api_figures_stream(
    job_id: int, request: Request, auth: ApiAuth, db: Db, settings: Config
) -> StreamingResponse:
    """Server-sent events: a `figures` event (JSON `{rows, totals, charts}`: the
    snapshot's `figures` and `totals`, and the live charts' specs by name:
    requests/s per cycle, response time percentiles, users and failed tests,
    over time) at once and when figures changed, at most once a second, then
    an `end` event with the job's final state."""
    if await run_in_threadpool(_state, db, job_id) is None:
        raise HTTPException(404, f"no job {job_id}")
    reader = FiguresReader(console_path(settings, job_id))

    def event() -> str:
        return f"event: figures\ndata: {json.dumps(reader.view())}\n\n"

    async def events():
        yield "retry: 2000\n\n"
        await run_in_threadpool(reader.update)
        yield event()
        checked, sent, unsent = 0.0, time.monotonic(), False
        while True:
            unsent = await run_in_threadpool(reader.update) or unsent
            now = time.monotonic()
            if unsent and now - sent >= EVENT_EVERY:
                yield event()
                sent, unsent = now, False
            if now - checked >= STATE_EVERY:
                checked = now
                state = await run_in_threadpool(_state, db, job_id)
                if state is None or state in FINISHED:
                    if await run_in_threadpool(reader.update) or unsent:
                        yield event()
                    yield f"event: end\ndata: {state or 'deleted'}\n\n"
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
