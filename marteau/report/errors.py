"""Errors by kind: what went wrong, how often, and one traceback a user can read.

Why: FunkLoad's "Failures and Errors" groups responses by HTTP code only, so
a thousand refused connections and a thousand time-outs are one group, and
its traceback is the engine's: a dozen frames of Marteau's HTTP client
under the node's venv path (``.../site-packages/marteau/...``) and the job
directory.  Here requests and tests are grouped by the *kind* of error (the
exception type that started it, or the HTTP status of a failure) and the
first traceback of each kind is trimmed to the user's own frames, named by
file name only.  FunkLoad's groups (`marteau.report.stats.ErrorGroup`) stay
as they are: ``index.rst`` prints them byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marteau.results.records import RESULT_NAMES, SUCCESSFUL
from marteau.results.resultset import ResultSet

# the two lines Python writes between the tracebacks of a chain of exceptions
CAUSE = "The above exception was the direct cause of the following exception:"
CONTEXT = "During handling of the above exception, another exception occurred:"
HEADER = "Traceback (most recent call last):"
# a frame of Marteau, its shims, a library or the standard library: not the user's code
# (the compiled engine's frames name their source relative to the package's folder)
ENGINE_PATH = re.compile(
    r"[/\\](?:site-packages|dist-packages|lib[/\\]python3[^/\\]*)[/\\]"
    r"|(?:^|[/\\])marteau[/\\](?:engine|funkload|results|report)[/\\]"
    r"|[/\\](?:funkload|webunit)[/\\][^/\\]+\.py$"
    r"|^<frozen "
)
FRAME = re.compile(r'^  File "(?P<path>[^"]*)"(?P<rest>.*)$')
# an absolute path inside a message: only its last part is kept
ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:/[\w.+~@-]+){2,}")


@dataclass
class ErrorKind:
    """Requests or tests that failed the same way."""

    what: str  # "request" or "test"
    kind: str  # exception type (ConnectionRefusedError) or "HTTP 404"
    result: str  # "Failure" or "Error"
    count: int
    message: str  # the first one's last line, paths trimmed
    traceback: str | None  # the first one's, trimmed (`trim_traceback`)
    sample_url: str | None  # requests: the first one's url
    cycles: list[int] = field(default_factory=list)


def _short_path(path: str) -> str:
    return re.split(r"[/\\]", path)[-1] or path


def _trim_paths(line: str) -> str:
    return ABSOLUTE_PATH.sub(lambda m: _short_path(m.group(0)), line)


def _blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """A traceback's chained blocks: (the separator line before it or None, its lines)."""
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        if line.strip() in (CAUSE, CONTEXT):
            blocks.append((line.strip(), []))
        elif line.strip():
            blocks[-1][1].append(line)
    return [(sep, lines) for sep, lines in blocks if lines]


def _trim_block(lines: list[str]) -> list[str]:
    """One block without its engine frames; only the exception when no frame is the user's."""
    out: list[str] = []
    hidden = frames = 0
    keep = False  # the source lines under a kept frame

    def note() -> None:
        nonlocal hidden
        if hidden and frames:
            out.append(f"  [{hidden} frame(s) of Marteau or a library]")
        hidden = 0

    for line in lines:
        frame = FRAME.match(line)
        if frame:
            keep = not ENGINE_PATH.search(frame.group("path"))
            if keep:
                note()
                out.append(f'  File "{_short_path(frame.group("path"))}"{frame.group("rest")}')
                frames += 1
            else:
                hidden += 1
        elif line.startswith("    "):  # source line or ^^^ marks of the frame above
            if keep:
                out.append(line)
        elif line.strip() != HEADER:
            note()
            keep = False
            out.append(_trim_paths(line))
    return [HEADER, *out] if frames else out


def trim_traceback(text: str | None) -> str | None:
    """The traceback without engine frames and node paths (the user's frames by file name)."""
    if not text or not text.strip():
        return None
    parts: list[str] = []
    for separator, lines in _blocks(text):
        trimmed = _trim_block(lines)
        if not trimmed:
            continue
        if separator and parts:
            parts.append(f"\n{separator}\n")
        parts.append("\n".join(trimmed))
    return "\n".join(parts)


def _exception_of(lines: list[str]) -> str:
    """The last line of a block that is not a frame: ``Type: message``."""
    for line in reversed(lines):
        if line.strip() and not line.startswith(" ") and line.strip() != HEADER:
            return line.strip()
    return ""


def error_kind(text: str | None) -> tuple[str, str]:
    """(kind, message) of a traceback.

    The kind is the type of the exception that started it: the first of a
    chain of ``raise ... from`` (a refused connection re-raised as the
    client's error is a ``ConnectionRefusedError``), else the last one
    (an exception raised while handling another is the user's).
    """
    blocks = _blocks(text or "")
    if not blocks:
        return "no traceback", ""
    start = len(blocks) - 1
    while start > 0 and blocks[start][0] == CAUSE:
        start -= 1
    name = _unqualified(_exception_of(blocks[start][1])).split(":", 1)[0] or "unknown error"
    return name, _trim_paths(_unqualified(_exception_of(blocks[-1][1])))


def _unqualified(line: str) -> str:
    """``pkg.module.Error: message`` as ``Error: message``."""
    name, sep, message = line.partition(": ")
    if " " in name:  # not an exception type
        return line
    return f"{name.rsplit('.', 1)[-1]}{sep}{message}"


def _detail_traceback(rs: ResultSet, detail_id: int) -> str | None:
    detail = rs.detail(detail_id) or {}
    return detail.get("traceback") or None


def error_kinds(rs: ResultSet) -> list[ErrorKind]:
    """Failed requests, then failed tests, grouped by kind; most frequent first in each."""
    return _kinds_of(rs, "request", rs.responses) + _kinds_of(rs, "test", rs.tests)


def _kinds_of(rs: ResultSet, what: str, records: Any) -> list[ErrorKind]:
    """One `ErrorKind` per (result, kind) among the failed `records` (responses or tests).

    Python reads each distinct detail (traceback) once and each distinct
    traceback text is parsed once; numpy groups the rows.
    """
    if records is None or not len(records):
        return []
    bad = records[records["result"] != SUCCESSFUL]
    if not bad.size:
        return []
    ids, inverse = np.unique(bad["detail"], return_inverse=True)
    kinds: dict[str, int] = {}
    parsed: dict[str | None, int] = {}
    kind_of_id = np.empty(ids.size, np.int64)
    by_code = what == "request"  # a failed request without a traceback: its HTTP status
    for j, detail_id in enumerate(ids.tolist()):
        text = _detail_traceback(rs, detail_id) if detail_id else None
        if by_code and text is None:
            kind_of_id[j] = -1
            continue
        if text not in parsed:
            parsed[text] = kinds.setdefault(error_kind(text)[0], len(kinds))
        kind_of_id[j] = parsed[text]
    kind = kind_of_id[inverse.reshape(-1)]
    codes = bad["code"].astype(np.int64) if by_code else np.full(bad.size, -1, np.int64)
    keys = np.stack([bad["result"].astype(np.int64), kind, np.where(kind < 0, codes, -1)])
    groups, first, group_of, counts = np.unique(
        keys, axis=1, return_index=True, return_inverse=True, return_counts=True
    )
    group_of = group_of.reshape(-1)
    names = {index: name for name, index in kinds.items()}
    out = []
    for g in range(groups.shape[1]):
        result, kind_id, code = (int(v) for v in groups[:, g])
        sample = bad[int(first[g])]
        text = _detail_traceback(rs, int(sample["detail"])) if sample["detail"] else None
        out.append(
            ErrorKind(
                what=what,
                kind=names[kind_id] if kind_id >= 0 else f"HTTP {code}",
                result=RESULT_NAMES[result],
                count=int(counts[g]),
                message=error_kind(text)[1] if kind_id >= 0 else f"HTTP status {code}",
                traceback=trim_traceback(text),
                sample_url=rs.strings[int(sample["url"])] if by_code else None,
                cycles=np.unique(bad["cycle"][group_of == g]).tolist(),
            )
        )
    out.sort(key=lambda k: (-k.count, k.result, k.kind))
    return out
