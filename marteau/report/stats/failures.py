"""FunkLoad's table of failures and errors, and Marteau's responses by HTTP code.

Both read details (headers, bodies, tracebacks) the nodes recorded from
the target: each is shown cut and escaped (`printable_body`), never as
markup.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marteau.report.stats.arrays import Indexes, Records, distinct
from marteau.report.stats.model import ErrorGroup, HttpCodeStats
from marteau.report.stats.passes import FileTotals
from marteau.results.records import RESULT_NAMES, SUCCESSFUL
from marteau.results.resultset import ResultSet

SAMPLE_BODY_CHARS = 1024


def _header(detail: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (detail or {}).get("headers") or ():
        if str(key).lower() == name:
            return str(value)
    return None


def printable_body(body: object, limit: int = SAMPLE_BODY_CHARS) -> str | None:
    """A failure body cut to `limit` chars, control characters escaped (safe to show)."""
    if body is None or body == "":
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "backslashreplace")
    text = str(body)[:limit]
    return "".join(
        c
        if c in "\n\t" or (c.isprintable() and c != "\x7f")
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def error_groups(
    responses: Records, rs: ResultSet, bad_rows: Indexes | None = None
) -> list[ErrorGroup]:
    """Errors grouped by result, then (code, bobo-exception-file, -line), FunkLoad's order.

    `bad_rows`: the rows whose result is not SUCCESSFUL, when already known.
    """
    if not responses.size:
        return []
    bad = responses[responses["result"] != SUCCESSFUL if bad_rows is None else bad_rows]
    if not bad.size:
        return []
    # one small int per distinct (bobo file, bobo line) so numpy can group
    zope_keys: dict[tuple[str | None, str | None], int] = {(None, None): 0}
    detail_ids = np.unique(bad["detail"])
    lookup = np.zeros(int(detail_ids.max()) + 1, np.int64)
    for detail_id in detail_ids.tolist():
        if detail_id:
            detail = rs.detail(detail_id)
            key = (_header(detail, "bobo-exception-file"), _header(detail, "bobo-exception-line"))
            lookup[detail_id] = zope_keys.setdefault(key, len(zope_keys))
    names = {index: key for key, index in zope_keys.items()}
    keys = np.stack(
        [bad["result"].astype(np.int64), bad["code"].astype(np.int64), lookup[bad["detail"]]]
    )
    uniq, first, inverse, counts = np.unique(
        keys, axis=1, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    out = []
    for j in range(uniq.shape[1]):
        result, code, zope = (int(v) for v in uniq[:, j])
        sample = bad[int(first[j])]
        detail = rs.detail(int(sample["detail"]))
        file_, line = names[zope]
        out.append(
            ErrorGroup(
                result=RESULT_NAMES[result],
                code=code,
                count=int(counts[j]),
                exception_file=file_,
                exception_line=line,
                exception_type=_header(detail, "bobo-exception-type"),
                exception_value=_header(detail, "bobo-exception-value"),
                traceback=(detail or {}).get("traceback") or None,
                sample_url=rs.strings[int(sample["url"])],
                cycles=np.unique(bad["cycle"][inverse == j]).tolist(),
            )
        )
    # FunkLoad: Failures then Errors; keys sorted as strings, None first
    rank = {"Failure": 0, "Error": 1}
    out.sort(
        key=lambda g: (
            rank.get(g.result, 2),
            str(g.code),
            g.exception_file or "",
            g.exception_line or "",
        )
    )
    return out


def http_codes(responses: Records, rs: ResultSet, found: FileTotals | None) -> list[HttpCodeStats]:
    """Responses by HTTP code, from the file pass's counts when it could keep them."""
    if not responses.size:
        return []
    if found is None or found.codes is None:
        return _http_codes_sparse(responses, rs)
    url_column = responses["url"]
    out = []
    for code in sorted(found.codes):
        counts = found.codes[code]
        not_ok = found.bad[found.bad_codes == code]
        sample_url, sample_body = rs.strings[int(url_column[found.first[code]])], None
        for row in not_ok[:50].tolist():
            detail = rs.detail(int(responses["detail"][row]))
            if detail and detail.get("body"):
                sample_url = rs.strings[int(url_column[row])]
                sample_body = printable_body(detail["body"])
                break
        else:
            if not_ok.size:
                sample_url = rs.strings[int(url_column[not_ok[0]])]
        out.append(
            HttpCodeStats(
                code=int(code),
                count=int(counts.sum()),
                success=int(counts[0]),
                failure=int(counts[1]),
                error=int(counts[2]),
                sample_url=sample_url,
                sample_body=sample_body,
            )
        )
    return out


def _http_codes_sparse(responses: Records, rs: ResultSet) -> list[HttpCodeStats]:
    """`http_codes` for codes spread over a wide range (one pass per code)."""
    codes = distinct(responses["code"])
    out = []
    for code in codes.tolist():
        mask = responses["code"] == code
        count = int(np.count_nonzero(mask))
        results = responses["result"][mask]
        not_ok = np.flatnonzero(mask & (responses["result"] != SUCCESSFUL))
        sample_url, sample_body = rs.strings[int(responses["url"][np.flatnonzero(mask)[0]])], None
        for index in not_ok[:50].tolist():
            detail = rs.detail(int(responses["detail"][index]))
            if detail and detail.get("body"):
                sample_url = rs.strings[int(responses["url"][index])]
                sample_body = printable_body(detail["body"])
                break
        else:
            if not_ok.size:
                sample_url = rs.strings[int(responses["url"][not_ok[0]])]
        out.append(
            HttpCodeStats(
                code=int(code),
                count=count,
                success=int(np.count_nonzero(results == 0)),
                failure=int(np.count_nonzero(results == 1)),
                error=int(np.count_nonzero(results == 2)),
                sample_url=sample_url,
                sample_body=sample_body,
            )
        )
    return out
