"""The nodes and the workers: the JSON API (list; admins add, remove, enable, disable,
check and unlock a node) and the /nodes page. A host list at once: `node_batch`."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from marteau.errors import MarteauError
from marteau.service.db import Database
from marteau.service.models import Node, Worker
from marteau.service.node_pool import (
    add_nodes,
    check_now,
    forget_check,
    node_command,
    node_json,
    node_locks,
    node_view,
    parse_host_list,
    refuse_local,
)
from marteau.service.routes.deps import (
    ApiAdmin,
    ApiAuth,
    Auth,
    Config,
    Db,
    FormAuth,
    PageAuth,
    render,
)
from marteau.service.settings import Settings

router = APIRouter()


class NodeIn(BaseModel):
    name: str = Field(max_length=255)
    pool: str = Field("marteau", max_length=100)
    vars: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="Ansible host variables"
    )


def node_list(
    db: Database, settings: Settings, auth: Auth, session: Session | None = None
) -> list[dict]:
    """The nodes; their Ansible variables (which may hold secrets) for admins only."""
    now = time.time()
    with nullcontext(session) if session else db.read() as session:
        locks = node_locks(settings)
        nodes = [
            node_view(node_json(n, now), locks)
            for n in session.scalars(select(Node).order_by(Node.pool, Node.name))
        ]
    return nodes if auth.user.is_admin else [{**n, "vars": {}} for n in nodes]


def worker_list(db: Database, settings: Settings, session: Session | None = None) -> list[dict]:
    """The live workers: not stopped, and heard from within two lease lifetimes."""
    stale = time.time() - max(settings.lease_ttl, 10) * 2
    with nullcontext(session) if session else db.read() as session:
        rows = session.scalars(
            select(Worker)
            .where(Worker.stopped.is_(None), Worker.heartbeat >= stale)
            .order_by(Worker.started)
        ).all()
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "job": w.job_id,
                "heartbeat": w.heartbeat,
            }
            for w in rows
        ]


def _node_action(db: Database, settings: Settings, name: str, action: str) -> dict:
    with db.write() as session:
        node = session.scalar(select(Node).where(Node.name == name))
        if node is None:
            raise HTTPException(404, f"no node {name}")
        if action == "remove":
            if node.lease_job_id is not None and (node.lease_expires or 0) >= time.time():
                raise HTTPException(
                    409,
                    f"node {name} runs job {node.lease_job_id}: disable it, or cancel the job",
                )
            session.delete(node)
            forget_check(settings, name)
            return {"removed": name}
        if action == "enable":
            refuse_local(settings, node.name, node.vars)
        node.enabled = action == "enable"
        return node_json(node, time.time())


def _node_run(db: Database, settings: Settings, name: str, action: str) -> dict:
    with db.read() as session:
        node = session.scalar(select(Node).where(Node.name == name))
    if node is None:
        raise HTTPException(404, f"no node {name}")
    if action == "check":
        return {"name": name, "action": action, **check_now(db, settings, node)}
    code, output = node_command(settings, node, action)
    return {"name": name, "action": action, "exit_code": code, "output": output}


# -- API -------------------------------------------------------------------------


@router.get("/api/nodes", tags=["nodes"])
def api_nodes(auth: ApiAuth, db: Db, settings: Config) -> dict:
    """The nodes (their `vars` are shown to admins only)."""
    return {"nodes": node_list(db, settings, auth)}


@router.post("/api/nodes", tags=["nodes"], status_code=201)
def api_add_node(body: NodeIn, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    return add_nodes(db, settings, [body.name], body.pool, body.vars)[0]


@router.delete("/api/nodes/{name}", tags=["nodes"])
def api_remove_node(name: str, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    return _node_action(db, settings, name, "remove")


@router.post("/api/nodes/{name}/enable", tags=["nodes"])
def api_enable_node(name: str, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    return _node_action(db, settings, name, "enable")


@router.post("/api/nodes/{name}/check", tags=["nodes"])
def api_check_node(name: str, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    """`marteau nodes check` on the node: reachable, lock holder, version, clock."""
    return _node_run(db, settings, name, "check")


@router.post("/api/nodes/{name}/unlock", tags=["nodes"])
def api_unlock_node(name: str, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    """`marteau nodes unlock --force` on the node (its lock, whoever holds it)."""
    return _node_run(db, settings, name, "unlock")


@router.post("/api/nodes/{name}/disable", tags=["nodes"])
def api_disable_node(name: str, auth: ApiAdmin, db: Db, settings: Config) -> dict:
    return _node_action(db, settings, name, "disable")


@router.get("/api/workers", tags=["nodes"])
def api_workers(auth: ApiAuth, db: Db, settings: Config) -> dict:
    return {"workers": worker_list(db, settings)}


# -- the page --------------------------------------------------------------------


def _nodes_page(
    request: Request, auth: Auth, db: Database, settings: Settings, status: int = 200, **more: Any
) -> Response:
    nodes, workers = node_list(db, settings, auth), worker_list(db, settings)
    return render(request, "nodes.html", auth, status=status, nodes=nodes, workers=workers, **more)


@router.get("/nodes", response_class=HTMLResponse, include_in_schema=False)
def nodes_page(request: Request, auth: PageAuth, db: Db, settings: Config) -> Response:
    return _nodes_page(request, auth, db, settings)


@router.post("/nodes", include_in_schema=False)
async def nodes_add(request: Request, auth: FormAuth, db: Db, settings: Config) -> Response:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    form = await request.form()
    try:
        await run_in_threadpool(
            add_nodes,
            db,
            settings,
            parse_host_list(str(form.get("name", ""))),
            str(form.get("pool", "") or "marteau"),
            str(form.get("vars", "")),
        )
    except MarteauError as exc:
        return _nodes_page(request, auth, db, settings, status=400, error=str(exc))
    return RedirectResponse("/nodes", status_code=303)


@router.post("/nodes/{name}/{action}", include_in_schema=False)
def nodes_action(
    name: str, action: str, request: Request, auth: FormAuth, db: Db, settings: Config
) -> Response:
    if not auth.user.is_admin:
        raise HTTPException(403, "admins only")
    if action in ("check", "unlock"):
        result = _node_run(db, settings, name, action)
        return _nodes_page(request, auth, db, settings, result=result)
    if action not in ("enable", "disable", "remove"):
        raise HTTPException(404, f"no action {action}")
    _node_action(db, settings, name, action)
    return RedirectResponse("/nodes", status_code=303)
