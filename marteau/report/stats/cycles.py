"""The response figures, cycle by cycle: requests, pages, per request, description and node.

Why a cycle at a time: a cycle's responses are taken once as contiguous
columns (`passes.take_columns`), every figure of the cycle is read from
them, and they are dropped before the next cycle, so memory holds one
cycle's columns plus the groups' sorted durations.  The figures of the
whole bench are then unions of the cycles' groups (`Group.union`), with
the sums of the file pass (`passes.read_file_totals`), in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from marteau.report.stats.arrays import Floats, Indexes, Ints, Mask, Records, dense, sequential_sum
from marteau.report.stats.groups import (
    Group,
    Seconds,
    apdex_of,
    group_figures,
    successful_apdex_counts,
)
from marteau.report.stats.model import Apdex, DescriptionStats, PageStats, RequestStats, StepStats
from marteau.report.stats.pages import PAGE_TYPES, all_ok_pages, group_pages, ok_pages, page_timing
from marteau.report.stats.passes import (
    RESPONSE_COLUMNS,
    FileTotals,
    Part,
    node_slot,
    node_table,
    take_columns,
)
from marteau.results.merge import NodeInfo
from marteau.results.records import SUCCESSFUL

NodeFigures = tuple[list[RequestStats], RequestStats]  # (per cycle, whole bench)


def _request_keys(columns: dict[str, NDArray[Any]]) -> tuple[NDArray[np.integer[Any]], Indexes]:
    """The distinct ``step << 16 | number`` keys and each row's id among them.

    The two columns are taken out of `columns`, and dropped on return.
    """
    step = columns.pop("step")
    step <<= 16
    step |= columns.pop("number")
    return dense(step)


@dataclass
class ResponseFigures:
    """Everything computed from the responses."""

    requests: dict[int, RequestStats]
    pages: dict[int, PageStats]
    cvus: dict[int, int]
    steps: dict[int, list[StepStats]]
    overall_requests: RequestStats | None
    overall_pages: PageStats | None
    descriptions: list[DescriptionStats]
    nodes: list[NodeFigures]
    file_totals: FileTotals | None = None
    apdex: Apdex | None = None


class CycleAccumulator:
    """Takes the cycles one by one (`add_cycle`), then gives the figures (`figures`).

    Each ``_add_*`` method reads one kind of figure from a cycle's columns
    and keeps what the whole bench's figures need (its groups, its events
    per second, its carried sums).
    """

    def __init__(
        self,
        responses: Records,
        strings: list[str],
        t: float,
        duration: float,
        recorded: float,
        nodes: Sequence[NodeInfo],
        thread_base: int,
    ) -> None:
        self.responses = responses
        self.strings = strings
        self.t = t
        self.duration = duration  # one cycle's recording window
        self.recorded = recorded  # the bench's recorded time
        self.nodes = nodes
        self.thread_base = thread_base
        self.page_type = np.array([s in PAGE_TYPES for s in strings] or [False], dtype=bool)
        self.nonempty = np.array([bool(s) for s in strings] or [False], dtype=bool)
        # node slot -> position in `nodes`; None: one node or none, no breakdown
        self.node_ids = node_table(nodes) if len(nodes) > 1 else None
        # per cycle, for the cycles' rows
        self.requests: dict[int, RequestStats] = {}
        self.pages: dict[int, PageStats] = {}
        self.cvus: dict[int, int] = {}
        self.steps: dict[int, list[StepStats]] = {}
        # the parts of the whole bench's figures
        self.request_groups: list[Group] = []
        self.request_seconds: list[Seconds] = []
        self.page_counts: list[int] = []
        self.page_ok: list[Group] = []
        self.page_ok_total: float | None = None  # successful pages' sum, page order
        self.page_ok_seconds: list[Seconds] = []
        self.page_owned: list[Group] = []
        self.description_parts: dict[int, list[Group]] = {}
        self.node_parts: list[list[tuple[Group, Seconds]]] = [[] for _ in nodes]
        self.node_cycles: list[list[RequestStats]] = [[] for _ in nodes]
        self.successful_apdex = np.zeros(2, np.int64)  # satisfied, tolerating

    # ------------------------------------------------------------- one cycle

    def add_cycle(self, cycle: int, part: Part) -> None:
        """Every figure of one cycle; its columns are dropped as soon as read."""
        columns = take_columns(
            self.responses, part, RESPONSE_COLUMNS, {"time": np.int64, "step": np.int64}
        )
        d = columns.pop("duration")
        ok = columns.pop("result") == SUCCESSFUL
        seconds = columns.pop("time")  # int(time)
        cvus = columns.pop("cvus")
        self.successful_apdex += successful_apdex_counts(d, ok, self.t)
        # per request (step.number) groups first: the cycle's sorted values are their union
        keys, key_ids = _request_keys(columns)
        by_key, order = group_figures(d, ok, key_ids, int(keys.size), self.t)
        del key_ids
        group = Group.union(list(by_key.values()), sequential_sum(d), last=int(d.size) - 1)
        per_second = self._add_requests(cycle, int(cvus[0]), group, seconds)
        threads, thread_ids = dense(columns.pop("thread"))
        kinds = columns.pop("type")
        self._add_pages(cycle, d, ok, seconds, thread_ids, int(threads.size), kinds, group)
        descriptions = columns.pop("description")
        described = self.nonempty[descriptions]
        urls = columns.pop("url")
        self._add_steps(cycle, cvus, keys, by_key, order, kinds, urls, descriptions, described)
        del keys, by_key, order, kinds, urls
        self._add_descriptions(d[described], ok[described], descriptions[described])
        del descriptions, described
        self._add_nodes(cycle, cvus, d, ok, seconds, threads, thread_ids, group, per_second)

    def _add_requests(self, cycle: int, cvus: int, group: Group, seconds: Ints) -> Seconds:
        """The cycle's request figures; returns its responses per second."""
        per_second = Seconds.of(seconds)
        self.cvus[cycle] = cvus
        self.request_groups.append(group)
        self.request_seconds.append(per_second)
        self.requests[cycle] = RequestStats(
            **group.timing(self.t),
            cycle=cycle,
            cvus=cvus,
            rps=group.count / self.duration if self.duration else 0.0,
            max_rps=per_second.max(),
        )
        return per_second

    def _add_pages(
        self,
        cycle: int,
        d: Floats,
        ok: Mask,
        seconds: Ints,
        thread_ids: Indexes,
        threads: int,
        kinds: NDArray[np.uint32],
        every: Group,
    ) -> None:
        """The cycle's pages (FunkLoad grouping); the successful pages' sum carried on."""
        pages = group_pages(
            d, ok, seconds, thread_ids, threads, self.page_type[kinds], every, self.t
        )
        ok_group, self.page_ok_total = ok_pages(pages.ok_durations, self.page_ok_total)
        self.page_counts.append(pages.count)
        self.page_ok.append(ok_group)
        self.page_ok_seconds.append(pages.ok_seconds)
        self.page_owned.append(pages.owned)
        self.pages[cycle] = PageStats(
            **page_timing(
                pages.count, ok_group, pages.ok_seconds, pages.owned, self.t, self.duration
            ),
            cycle=cycle,
            cvus=self.cvus[cycle],
        )

    def _add_steps(
        self,
        cycle: int,
        cvus: NDArray[np.uint32],
        keys: NDArray[np.integer[Any]],
        by_key: dict[int, Group],
        order: Indexes | None,
        kinds: NDArray[np.uint32],
        urls: NDArray[np.uint32],
        descriptions: NDArray[np.uint32],
        described: Mask,
    ) -> None:
        """Per request (step.number): last url and type, last non-empty description."""
        if order is None:
            positions = np.where(described, np.arange(described.size), -1)
        else:
            positions = np.where(described[order], order, -1)
        strings = self.strings
        steps = []
        at = 0
        for k, g in sorted(by_key.items()):
            last_described = int(positions[at : at + g.count].max())
            at += g.count
            key = int(keys[k])
            step, number = key >> 16, key & 0xFFFF
            steps.append(
                StepStats(
                    **g.timing(self.t),
                    cycle=cycle,
                    cvus=int(cvus[g.first]),
                    key=f"{step:03d}.{number:03d}",
                    step=step,
                    number=number,
                    url=strings[int(urls[g.last])],
                    type=strings[int(kinds[g.last])],
                    description=(
                        strings[int(descriptions[last_described])] if last_described >= 0 else ""
                    ),
                )
            )
        steps.sort(key=lambda s: s.key)
        self.steps[cycle] = steps

    def _add_descriptions(self, d: Floats, ok: Mask, descriptions: NDArray[np.uint32]) -> None:
        """The groups of the described responses (the whole bench's: `_descriptions`)."""
        by_description, _ = group_figures(
            d, ok, descriptions.astype(np.intp), int(self.nonempty.size), self.t
        )
        for k, g in by_description.items():
            self.description_parts.setdefault(k, []).append(g)

    def _add_nodes(
        self,
        cycle: int,
        cvus: NDArray[np.uint32],
        d: Floats,
        ok: Mask,
        seconds: Ints,
        threads: NDArray[np.integer[Any]],
        thread_ids: Indexes,
        every: Group,
        per_second: Seconds,
    ) -> None:
        """Each node's share of the cycle (its own users: the node's record of the cycle)."""
        if self.node_ids is not None:
            self._split_nodes(self.node_ids, d, ok, seconds, threads, thread_ids)
        elif self.nodes:
            self.node_parts[0].append((every, per_second))
        for i, node in enumerate(self.nodes):
            if len(self.node_parts[i]) > len(self.node_cycles[i]):
                g, node_seconds = self.node_parts[i][-1]
                own = node.cycles[cycle] if cycle < len(node.cycles) else int(cvus[g.first])
                self.node_cycles[i].append(
                    RequestStats(
                        **g.timing(self.t),
                        cycle=cycle,
                        cvus=own,
                        rps=g.count / self.duration if self.duration else 0.0,
                        max_rps=node_seconds.max(),
                    )
                )

    def _split_nodes(
        self,
        node_ids: Indexes,
        d: Floats,
        ok: Mask,
        seconds: Ints,
        threads: NDArray[np.integer[Any]],
        thread_ids: Indexes,
    ) -> None:
        """The cycle's groups by node (thread // thread_base); unknown nodes dropped."""
        node_of_thread = node_ids[node_slot(threads, self.thread_base, node_ids.size)]
        count = len(self.nodes)
        by_node, order = group_figures(d, ok, node_of_thread[thread_ids], count + 1, self.t)
        ordered_seconds = seconds if order is None else seconds[order]
        at = 0
        for i in range(count + 1):
            g = by_node.get(i)
            if g is None:
                continue
            if i < count:
                self.node_parts[i].append((g, Seconds.of(ordered_seconds[at : at + g.count])))
            at += g.count

    # ------------------------------------------------------------- the whole bench

    def figures(self, totals: FileTotals | None) -> ResponseFigures:
        """The cycles' figures and the whole bench's (after the last `add_cycle`).

        `totals`: the file pass's (`passes.read_file_totals` with this
        accumulator's `node_ids` and `nonempty`); None when there is no cycle.
        """
        if totals is None:
            empty = RequestStats(**Group.empty().timing(self.t), cvus=0, rps=0.0, max_rps=0)
            return ResponseFigures(
                {}, {}, {}, {}, None, None, [], [([], empty) for _ in self.nodes]
            )
        overall_requests = self._overall_requests(totals.total)
        return ResponseFigures(
            self.requests,
            self.pages,
            self.cvus,
            self.steps,
            overall_requests,
            self._overall_pages(overall_requests.cvus),
            self._descriptions(totals.per_description),
            self._node_figures(totals),
            totals,
            apdex_of(
                overall_requests.count,
                int(self.successful_apdex[0]),
                int(self.successful_apdex[1]),
                self.t,
            ),
        )

    def _overall_requests(self, total: float) -> RequestStats:
        overall = Group.union(self.request_groups, total)
        self.request_groups = []
        return RequestStats(
            **overall.timing(self.t),
            cvus=max(self.cvus.values()),
            rps=overall.count / self.recorded if self.recorded else 0.0,
            max_rps=Seconds.combine(self.request_seconds).max(),
        )

    def _overall_pages(self, cvus: int) -> PageStats:
        overall = PageStats(
            **page_timing(
                sum(self.page_counts),
                all_ok_pages(self.page_ok, self.page_ok_total),
                Seconds.combine(self.page_ok_seconds),
                Group.union_counts(self.page_owned),
                self.t,
                self.recorded,
            ),
            cvus=cvus,
        )
        self.page_ok = []
        return overall

    def _descriptions(self, totals: Floats) -> list[DescriptionStats]:
        """Per description, the whole bench (sums: the file pass's, in file order)."""
        out = []
        for k in sorted(self.description_parts):
            g = Group.union(self.description_parts.pop(k), float(totals[k]))
            out.append(
                DescriptionStats(
                    **g.timing(self.t),
                    description=self.strings[k],
                    rps=g.count / self.recorded if self.recorded else 0.0,
                )
            )
        out.sort(key=lambda x: x.description)
        return out

    def _node_figures(self, totals: FileTotals) -> list[NodeFigures]:
        """Per node: its cycles, and its whole bench over its own recorded time."""
        out = []
        for i in range(len(self.nodes)):
            per_cycle = self.node_cycles[i]
            node_recorded = self.duration * len(per_cycle)
            if self.node_parts[i]:
                total = float(totals.per_node[i]) if self.node_ids is not None else totals.total
                g = Group.union([g for g, _ in self.node_parts[i]], total)
            else:
                g = Group.empty()
            out.append(
                (
                    per_cycle,
                    RequestStats(
                        **g.timing(self.t),
                        cvus=max((c.cvus for c in per_cycle), default=0),
                        rps=g.count / node_recorded if node_recorded else 0.0,
                        max_rps=Seconds.combine([s for _, s in self.node_parts[i]]).max(),
                    ),
                )
            )
            self.node_parts[i] = []
        return out
