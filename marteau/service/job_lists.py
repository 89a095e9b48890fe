"""The job lists of the dashboard and `GET /api/jobs`, read as plain rows.

A list of 50 jobs as ORM objects, with their owners and nodes loaded alongside, cost
more CPU than everything else of the request under load (instances, identity map,
selectin loaders rendering their IN lists). Here the same three statements, whatever
the number of jobs: the page of jobs, then the owners' emails and the nodes of those
jobs. The owners and nodes come apart rather than joined: SQLite would join every job
of the states before sorting them for the LIMIT."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.orm import Session

from marteau.service.models import Job, JobNode, User


@dataclass(frozen=True)
class ListedOwner:
    email: str


@dataclass(frozen=True)
class ListedNode:
    node_name: str


class ListedJob:
    """A job of a list, not to be changed: its columns as attributes, `owner` and
    `nodes` as `Job` has them, so that `job_json` and the templates take either. The
    columns are copied into the instance: reading them from the row object each
    time cost a fifth of a list's CPU."""

    def __init__(
        self, columns: list[str], row: Row[Any], owner: ListedOwner | None, nodes: list[ListedNode]
    ) -> None:
        vars(self).update(zip(columns, row, strict=True))
        self.owner = owner
        self.nodes = nodes

    finished = Job.finished
    source = Job.source


def listed_jobs(
    session: Session, where: ColumnElement[bool] | None, limit: int, offset: int = 0
) -> list[ListedJob]:
    """The newest jobs first (those matching `where`, if given)."""
    connection = session.connection()  # Core statements: no ORM machinery per row
    query = select(Job.__table__).order_by(Job.id.desc()).limit(limit).offset(offset)
    result = connection.execute(query if where is None else query.where(where))
    columns = list(result.keys())
    rows = result.all()
    if not rows:
        return []
    nodes: dict[int, list[ListedNode]] = defaultdict(list)
    names = select(JobNode.job_id, JobNode.node_name).where(
        JobNode.job_id.in_([row.id for row in rows])
    )
    for job_id, name in connection.execute(names.order_by(JobNode.job_id, JobNode.node_name)):
        nodes[job_id].append(ListedNode(name))
    owner_ids = {row.owner_id for row in rows if row.owner_id is not None}
    emails = (
        dict(connection.execute(select(User.id, User.email).where(User.id.in_(owner_ids))).all())
        if owner_ids
        else {}
    )
    return [
        ListedJob(
            columns,
            row,
            ListedOwner(emails[row.owner_id]) if row.owner_id in emails else None,
            nodes.get(row.id, []),
        )
        for row in rows
    ]
