"""The Prometheus source of `monitor:` in `.marteau.yml`: PromQL queries over the bench window.

After the run, each query is pulled once with ``/api/v1/query_range`` for the
window from the first cycle's staging to the end of the last (the controller's
clock), at the monitor's interval. Each series becomes samples of the host its
``instance`` label names (``prometheus`` without one), the value under the
query's name, written as a monitored host's directory
(`marteau.monitor.samples`) so the report charts and averages it like the
agent's samples. The URL is the project's: it is fetched from the controller
with a timeout and a size bound, and a failure is a warning, never the run's.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from marteau.errors import MarteauError
from marteau.monitor.samples import SAMPLES, write_host

TIMEOUT = 15.0  # seconds one query may take
MAX_BYTES = 32 * 1024 * 1024  # an answer larger than this is refused
MAX_POINTS = 11_000  # Prometheus's own limit of points per series
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def query_range(url: str, query: str, start: float, end: float, step: float) -> list[dict]:
    """The ``result`` of one range query (a list of {metric, values}); MarteauError if not."""
    step = max(step, (end - start) / MAX_POINTS, 0.001)
    params = urllib.parse.urlencode(
        {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    )
    address = url.rstrip("/") + "/api/v1/query_range?" + params
    request = urllib.request.Request(address, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 (http(s) only, checked)
            body = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise MarteauError(f"{url}: HTTP {exc.code}: {detail.strip()[:300]}") from None
    except (OSError, ValueError) as exc:
        raise MarteauError(f"{url}: {exc}") from None
    if len(body) > MAX_BYTES:
        raise MarteauError(f"{url}: answer larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(body)
        if data.get("status") != "success" or data["data"]["resultType"] != "matrix":
            raise ValueError(data.get("error") or "not a matrix")
        return list(data["data"]["result"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MarteauError(f"{url}: unexpected answer: {exc}") from None


def _host(metric: dict) -> str:
    instance = str(metric.get("instance") or "prometheus")
    return "".join(c if c in NAME_CHARS else "_" for c in instance)[:100] or "prometheus"


def pull(
    url: str, queries: dict[str, str], start: float, end: float, step: float, target: Path
) -> list[str]:
    """Write each instance's samples under `target/<instance>/`; the warnings."""
    warnings: list[str] = []
    by_host: dict[str, dict[float, dict[str, str]]] = {}
    for name, query in queries.items():
        try:
            series = query_range(url, query, start, end, step)
        except MarteauError as exc:
            warnings.append(f"prometheus query {name}: {exc}")
            continue
        seen: set[str] = set()
        for item in series:
            host = _host(item.get("metric") or {})
            if host in seen:
                warnings.append(
                    f"prometheus query {name}: several series for {host}, the first kept"
                )
                continue
            seen.add(host)
            points = by_host.setdefault(host, {})
            for when, value in item.get("values") or []:
                number = float(value)
                if math.isfinite(number):
                    points.setdefault(float(when), {})[name] = repr(number)
    for host, points in by_host.items():
        directory = target / f"prometheus-{host}"
        directory.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"marteau_monitor": 1, "host": host, "source": url})]
        lines += [
            json.dumps({"time": repr(when), **values}, separators=(",", ":"))
            for when, values in sorted(points.items())
        ]
        (directory / SAMPLES).write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_host(directory, host, f"Prometheus {url}", 0.0)
    return warnings
