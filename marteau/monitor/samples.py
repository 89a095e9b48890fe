"""A monitored host's samples as the controller collects them: one directory per host.

``<dir>/samples.jsonl`` is what `marteau monitor --record` (`agent.record`)
wrote on the host, or what the Prometheus source pulled; ``<dir>/host.json``
what the controller knows of the host: ``name``, ``description`` and
``clock_offset`` (the host's clock minus the controller's, seconds, measured
as the bench nodes' are). `read_host` gives the samples on the controller's
clock. The files are data from another machine: their size is bounded before
they are read and every line is checked.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from marteau.errors import MarteauError

SAMPLES = "samples.jsonl"
HOST = "host.json"
MAX_BYTES = 256 * 1024 * 1024  # a samples file larger than this is refused
MAX_VALUE = 200  # characters of one value (a number; a Prometheus label set at most)


@dataclass
class HostSamples:
    """One monitored host: its name, description and samples (controller clock)."""

    name: str
    description: str = ""
    clock_offset: float = 0.0
    samples: list[dict[str, str]] = field(default_factory=list)
    stopped: str = ""  # why the agent stopped, as it said


def _clean(record: dict, where: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise MarteauError(f"{where}: expected an object")
    out = {}
    for key, value in record.items():
        text = str(value)
        if not isinstance(key, str) or not key.isidentifier() or len(key) > 100:
            raise MarteauError(f"{where}: bad name {str(key)[:100]!r}")
        if len(text) > MAX_VALUE:
            raise MarteauError(f"{where}: {key}: value longer than {MAX_VALUE} characters")
        out[key] = text
    return out


def read_host(directory: str | os.PathLike[str]) -> HostSamples:
    """The samples of `directory`, their times moved to the controller's clock."""
    top = Path(directory)
    path = top / SAMPLES
    try:
        described = json.loads((top / HOST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        described = {}
    except (OSError, ValueError) as exc:
        raise MarteauError(f"{top / HOST}: cannot read: {exc}") from None
    if not isinstance(described, dict):
        raise MarteauError(f"{top / HOST}: expected an object")
    try:
        offset = float(described.get("clock_offset") or 0.0)
    except (TypeError, ValueError):
        raise MarteauError(f"{top / HOST}: clock_offset: expected a number") from None
    if not math.isfinite(offset):
        raise MarteauError(f"{top / HOST}: clock_offset: expected a number")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MarteauError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size > MAX_BYTES:
        raise MarteauError(f"{path}: {size} bytes, more than the {MAX_BYTES} accepted")
    host = HostSamples(
        name=str(described.get("name") or top.name)[:MAX_VALUE],
        description=str(described.get("description") or "")[:MAX_VALUE],
        clock_offset=offset,
    )
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except ValueError:
                if not line.endswith("\n"):  # the last line of a killed agent
                    break
                raise MarteauError(f"{where}: not a JSON line") from None
            if number == 1 or "stopped" in record:
                host.stopped = str(record.get("stopped", ""))[:MAX_VALUE]
                continue
            sample = _clean(record, where)
            try:
                when = float(sample["time"]) - offset
            except (KeyError, ValueError):
                raise MarteauError(f"{where}: time: expected epoch seconds") from None
            sample["time"] = repr(when)
            sample["host"] = host.name
            host.samples.append(sample)
    return host


def write_host(
    directory: str | os.PathLike[str], name: str, description: str, offset: float
) -> None:
    """``host.json`` beside a host's samples."""
    target = Path(directory) / HOST
    target.write_text(
        json.dumps({"name": name, "description": description, "clock_offset": offset}) + "\n",
        encoding="utf-8",
    )
