"""The job lists of the dashboard and `GET /api/jobs`, read as plain rows.

A list of 50 jobs as ORM objects, with their owners and nodes loaded alongside, cost
more CPU than everything else of the request under load (instances, identity map,
selectin loaders rendering their IN lists). Here one Core statement per list,
whatever the number of jobs: the page of jobs (a subquery, so that SQLite sorts and
cuts the jobs before joining anything), each with its owner's email and its node
names aggregated into one string. Every statement SQLAlchemy sends costs some 0.15 ms
of Python; three of them per list were half of `/api/jobs`.

A finished job's row does not change unless one of its columns does (a report
purged, its disk use measured): `ListedRows` keeps those rows, keyed by the values
the statement returned (JSON columns as their text), with what the lists made of
them (its JSON, its HTML), so that a page of finished jobs is built once, not once
per request."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import JSON, Integer, Select, Text, bindparam, cast, func, select
from sqlalchemy.orm import Session

from marteau.service.models import FINISHED, Job, JobNode, User

T = TypeVar("T")

NAMES_SEPARATOR = " "  # node names have no spaces (node_pool.NODE_NAME)


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

    def __init__(self, row: tuple[Any, ...]) -> None:
        values = dict(zip(COLUMNS, row, strict=False))
        for key in JSON_COLUMNS:
            if values[key] is not None:
                values[key] = json.loads(values[key])
        vars(self).update(values)
        email, names = row[-2], row[-1]
        self.owner = ListedOwner(email) if email is not None else None
        self.nodes = (
            [ListedNode(name) for name in sorted(names.split(NAMES_SEPARATOR))] if names else []
        )
        self._shown: dict[str, Any] = {}

    finished = Job.finished
    source = Job.source

    def shown(self, kind: str, make: Callable[[ListedJob], T]) -> T:
        """What a list makes of this row (`kind`: its JSON, its HTML), made once per
        row: a finished job's row is shared by the requests (`ListedRows`)."""
        if kind not in self._shown:
            self._shown[kind] = make(self)
        return self._shown[kind]


# a list reads no whole comparison (a JSON document each row would decode): the job's
# `flagged` column says what the lists show of it (comparisons)
LISTED = [column for column in Job.__table__.c if column.key not in ("comparison", "tolerance")]
COLUMNS = [column.key for column in LISTED]
# read as their text, decoded when a row is built: a kept row's key must be hashable
JSON_COLUMNS = [column.key for column in LISTED if isinstance(column.type, JSON)]
STATE = COLUMNS.index("state")


class ListedRows:
    """The rows of finished jobs, kept (at most `size`) with what the lists made of
    them, keyed by every value the list's statement read for them; other rows (their
    duration still runs) are built for each request."""

    def __init__(self, size: int = 2048) -> None:
        self._finished = lru_cache(maxsize=size)(ListedJob)

    def row(self, values: tuple[Any, ...]) -> ListedJob:
        if values[STATE] in FINISHED:
            return self._finished(values)
        return ListedJob(values)


def _page_statement(filtered: bool) -> Select[Any]:
    """The list's statement, built once: building it and its cache key for each
    request cost more than running it. Parameters: limit, offset (and states)."""
    read = [cast(c, Text).label(c.key) if c.key in JSON_COLUMNS else c for c in LISTED]
    page = select(*read).order_by(Job.id.desc())
    if filtered:
        page = page.where(Job.state.in_(bindparam("states", expanding=True)))
    page = page.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))
    page_rows = page.subquery()
    node_names = (
        select(func.aggregate_strings(JobNode.node_name, NAMES_SEPARATOR))
        .where(JobNode.job_id == page_rows.c.id)
        .scalar_subquery()
    )
    return (
        select(page_rows, User.email, node_names)
        .outerjoin(User, User.id == page_rows.c.owner_id)
        .order_by(page_rows.c.id.desc())
    )


ALL_JOBS = _page_statement(filtered=False)
JOBS_IN_STATES = _page_statement(filtered=True)


def listed_jobs(
    session: Session,
    rows: ListedRows,
    states: Collection[str] | None,
    limit: int,
    offset: int = 0,
) -> list[ListedJob]:
    """The newest jobs first (those in one of `states`, if given)."""
    parameters: dict[str, Any] = {"limit": limit, "offset": offset}
    if states is not None:
        parameters["states"] = list(states)
    statement = ALL_JOBS if states is None else JOBS_IN_STATES
    result = session.connection().execute(statement, parameters)  # Core: no ORM per row
    return [rows.row(tuple(values)) for values in result]


ALL_COUNT = select(func.count()).select_from(Job)
COUNT_IN_STATES = ALL_COUNT.where(Job.state.in_(bindparam("states", expanding=True)))


def job_count(session: Session, states: Collection[str] | None) -> int:
    """How many jobs (in one of `states`, if given): `count(*)`, which SQLite answers
    from its smallest index, three times faster than `count(jobs.id)`."""
    if states is None:
        return session.connection().execute(ALL_COUNT).scalar_one()
    return session.connection().execute(COUNT_IN_STATES, {"states": list(states)}).scalar_one()
