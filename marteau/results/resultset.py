"""Results of one bench node, loaded for the report (controller side, numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ResultSet:
    """Everything a node recorded, whatever file format it came from.

    `responses`, `tests` and `samples` are numpy structured arrays whose
    dtypes are `numpy_dtype(RESPONSE_FIELDS)` etc. from `records`; their
    string fields are ids into `strings`, their `detail` fields 1-based
    indexes into `details` (0 = none).
    """

    config: dict[str, str]  # FunkLoad <config> keys: id, cycles, duration, ...
    strings: list[str]
    responses: Any
    tests: Any
    samples: Any
    details: list[dict[str, Any]]  # {"headers": [[k, v]...], "body": str, "traceback": str}
    source: str  # the file it was read from
    node: str = ""  # node name (config "node" unless set by the merger)
    monitors: list[dict[str, str]] = field(default_factory=list)  # FunkLoad <monitor> attrs
    warnings: list[str] = field(default_factory=list)  # what was tolerated or skipped, and why
    # the open model's test iterations (ITERATION_FIELDS dtype); None or empty: a closed bench
    iterations: Any = None

    def string(self, string_id: int) -> str:
        return self.strings[string_id]

    def detail(self, detail_id: int) -> dict[str, Any] | None:
        return self.details[detail_id - 1] if detail_id else None
