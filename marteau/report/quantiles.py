"""The report's percentiles: which ones, and how FunkLoad reads them from sorted values.

Shared by the closed model's statistics (`stats.py`) and the open model's
(`open_model.py`), so that both give a p99 by the same rule.
"""

from __future__ import annotations

from typing import Any

PERCENTILES = (("p10", 10), ("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9))


def percentiles(sorted_values: Any) -> dict[str, float]:
    """Sorted-index percentiles: value at int(p / 100.0 * n), -1.0 when empty."""
    n = int(sorted_values.size)
    out = {}
    for key, p in PERCENTILES:
        out[key] = float(sorted_values[int(p / 100.0 * n)]) if n else -1.0
    return out
