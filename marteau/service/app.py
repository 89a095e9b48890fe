"""The web app: the JSON API under /api (OpenAPI at /docs and /openapi.json) and the
server-rendered pages. Auth: a login session cookie (with a CSRF token for every
unsafe request: a form field, or the X-CSRF-Token header for the API) or
`Authorization: Bearer <API token>`. The routes live in `marteau.service.routes`,
one module per resource; this module assembles them."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from marteau import __version__
from marteau.service.auth_cache import STAMP, AuthCache
from marteau.service.db import Database
from marteau.service.job_lists import ListedRows
from marteau.service.limits import RequestLimits
from marteau.service.login_gate import LoginGate
from marteau.service.routes import (
    accounts,
    console,
    figures,
    hosts,
    jobs,
    login,
    metrics,
    node_batch,
    nodes,
    pages,
    trend,
    usage,
    users,
)
from marteau.service.routes.deps import SERVICE, page_templates
from marteau.service.routes.errors import add_error_handlers
from marteau.service.settings import Settings

# in this order: it is the order of /openapi.json's paths, and of the matching (a
# fixed path such as /jobs/new before a parametrised one such as /jobs/{job_id}).
# The pages first: they are outside the schema, and the dashboard is the route most
# asked for (each request tries the routes in turn: some 100 us for the last ones)
ROUTES = (
    pages,
    login,
    hosts,
    figures,
    usage,
    node_batch,
    users,
    metrics,
    trend,
    accounts,
    jobs,
    console,
    nodes,
)


def lifespan_of(
    threads: int, db: Database
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: size the thread pool its sync routes run in (each slow
    request, a preview's clone or a node check, holds one for its duration), and at
    the end close the connections of the asyncio engine (`deps.run_read`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = threads
        gc.collect()
        gc.freeze()
        yield
        await db.dispose_async()

    return lifespan


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    db = db or Database(settings.db_url)
    app = FastAPI(
        title="Marteau",
        version=__version__,
        description="A queue of distributed load tests run with `marteau run`.",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan_of(settings.web_threads, db),
    )
    app.state.settings = settings
    app.state.db = db
    app.state.auth_cache = AuthCache(db, settings.data_dir / STAMP)
    app.state.login_gate = LoginGate(settings)
    app.state.templates = page_templates(settings)
    # the finished jobs' rows the dashboard and GET /api/jobs share (job_lists)
    app.state.listed_rows = ListedRows()
    app.add_middleware(RequestLimits)
    add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(SERVICE / "static")), name="static")
    for module in ROUTES:
        app.include_router(module.router)
    return app
