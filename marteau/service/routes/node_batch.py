"""Routes for adding nodes as a host list: several host names into one pool with
the same Ansible variables (the page's add form takes the same list)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from marteau.service.node_pool import add_nodes, node_locks, node_view, parse_host_list
from marteau.service.routes.deps import ApiAdmin, Config, Db

router = APIRouter(tags=["nodes"])


class NodesIn(BaseModel):
    names: list[str] | str = Field(
        description="host names: a list, or a text with one per line or comma-separated"
    )
    pool: str = "marteau"
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Ansible host variables, the same for every node"
    )


@router.post("/api/nodes/batch", status_code=201)
def api_add_nodes(
    body: NodesIn,
    auth: ApiAdmin,
    db: Db,
    settings: Config,
) -> dict:
    """Add several nodes at once, all or none (a bad or existing name adds none)."""
    nodes = add_nodes(db, settings, parse_host_list(body.names), body.pool, body.vars)
    locks = node_locks(settings)
    return {"nodes": [node_view(node, locks) for node in nodes]}
