"""Read FunkLoad XML result files (bench or ``fl-run-test``) into a `ResultSet`.

Controller side, numpy: per block of whole lines, numpy reads every line
that is byte for byte FunkLoad's ``<response .../>`` (the fast path);
anything else (another attribute order, ``'`` quoting, extra or
``traceback`` attributes, the long failure form, ``<testResult>``,
``<config>``, ``<monitor>``) goes to the tolerant reader
(`funkload_tolerant`).  Files written by FunkLoad 1.x load: stray ``"`` text,
a missing ``</funkload>`` (warning), invalid UTF-8 (replaced, warning),
``<monitorconfig>`` (ignored: it holds py2 pickles, never unpickled).
"""

from __future__ import annotations

import os
from typing import Any

from marteau.errors import MarteauError
from marteau.results.funkload_tolerant import ElementReader
from marteau.results.records import (
    ITERATION_FIELDS,
    RESPONSE_FIELDS,
    RESULT_NAMES,
    SAMPLE_FIELDS,
    TEST_FIELDS,
    numpy_dtype,
)
from marteau.results.resultset import ResultSet

# FunkLoad's own <response .../> line: these keys around 14 "-quoted values.
_RESPONSE_KEYS = (
    b"<response cycle=",
    b" cvus=",
    b" thread=",
    b" suite=",
    b" name=",
    b" step=",
    b" number=",
    b" type=",
    b" result=",
    b" url=",
    b" code=",
    b" description=",
    b" time=",
    b" duration=",
    b" />",
)
_KEY_WIDTHS = [len(key) for key in _RESPONSE_KEYS]
_PROBES = [
    (j, offset, key[offset])
    for j, key in enumerate(_RESPONSE_KEYS)
    for offset in ((0, 1, 10, 15) if j == 0 else (0, 1, 2) if j == 14 else (1, 2, len(key) - 1))
]
_PROBE_KEYS = [j for j, _, _ in _PROBES]
_PROBE_OFFSETS = [offset for _, offset, _ in _PROBES]
_PROBE_BYTES = bytes(byte for _, _, byte in _PROBES)
_INT_VALUES = {"cycle": 0, "cvus": 1, "thread": 2, "step": 5, "number": 6, "code": 10}
_FLOAT_VALUES = {"time": 12, "duration": 13}
_STRING_VALUES = {"type": 7, "url": 9, "description": 11}
_RESULT_VALUE = 8
_MAX_NUMBER = 32  # wider "numbers" go to the generic parser (and fail there)
_BOUNDARY = (
    b"\n<response ",
    b"\n<testResult ",
    b"\n<iteration ",
    b"\n<config ",
    b"\n<monitor",
    b"\n</funkload",
)
_STARTS = (b"<funkload", b"<response", b"<testResult", b"<config", b"<monitor")
_BLOCK = 16 * 1024 * 1024


class _XmlReader(ElementReader):
    """One `read_xml`: the fast path over each block, then the `ResultSet`.

    Per block of whole lines, numpy finds every line that is exactly
    FunkLoad's ``<response .../>`` (28 quotes, the fixed keys, byte for
    byte) and converts its numbers in C; only type/url/description become
    Python objects (to be interned).  Every other run of lines is a region
    for the tolerant reader; its records are put back in file order by line
    index.
    """

    def __init__(self, path: str) -> None:
        import numpy

        self.np = numpy
        self.dtype = numpy_dtype(RESPONSE_FIELDS)
        self.range28 = numpy.arange(28, dtype=numpy.int32)
        self.powers = 10 ** numpy.arange(8, -1, -1, dtype=numpy.int64)
        self.key_widths = numpy.array(_KEY_WIDTHS)
        self.probe_keys = numpy.array(_PROBE_KEYS)
        self.probe_offsets = numpy.array(_PROBE_OFFSETS, numpy.int32)
        self.probe_bytes = numpy.frombuffer(_PROBE_BYTES, numpy.uint8)
        super().__init__(path)
        self.parts: list[Any] = []  # structured response arrays, one per block

    # -- one block of whole lines --

    def block(self, data: bytes, first_line: int) -> None:
        np = self.np
        buf = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buf == 10).astype(np.int32)  # blocks are < 2 GiB
        line_start = np.concatenate((np.zeros(1, np.int32), newlines + 1))
        line_end = np.concatenate((newlines, np.full(1, len(data), np.int32)))
        if line_start[-1] == len(data):  # data ends with a newline: no empty last line
            line_start, line_end = line_start[:-1], line_end[:-1]
        quotes = np.flatnonzero(buf == 34).astype(np.int32)
        lo = np.searchsorted(quotes, line_start)
        hi = np.searchsorted(quotes, line_end)
        fast = np.flatnonzero(hi - lo == 28)
        fast_lines, columns = self.fast_responses(
            data, buf, quotes, lo[fast], fast, line_start, line_end
        )

        is_fast = np.zeros(len(line_start), bool)
        is_fast[fast_lines] = True
        slow_rows: list[tuple[Any, ...]] = []
        slow_lines: list[int] = []
        slow = np.flatnonzero(~is_fast)
        if len(slow):
            # Runs of consecutive non-fast lines are regions, parsed in order.
            breaks = np.flatnonzero(np.diff(slow) != 1) + 1
            for run in np.split(slow, breaks):
                first, last = int(run[0]), int(run[-1])
                region = data[int(line_start[first]) : int(line_end[last])]
                before = len(slow_rows)
                self.region(region, first_line + first, slow_rows)
                slow_lines.extend([first] * (len(slow_rows) - before))

        n_fast = len(fast_lines)
        records = np.zeros(n_fast + len(slow_rows), self.dtype)
        for name, values in columns.items():
            records[name][:n_fast] = values
        if slow_rows:
            records[n_fast:] = np.array(slow_rows, self.dtype)
            order = np.argsort(np.concatenate((fast_lines, slow_lines)), kind="stable")
            records = records[order]
        if len(records):
            self.parts.append(records)

    def fast_responses(
        self,
        data: bytes,
        buf: Any,
        quotes: Any,
        first_quote: Any,
        lines: Any,
        line_start: Any,
        line_end: Any,
    ) -> tuple[Any, dict[str, Any]]:
        """Lines that are exactly FunkLoad's response line → (line indexes, columns)."""
        np = self.np
        if not len(lines):
            return lines, {}
        q = quotes.take(first_quote[:, None] + self.range28)  # (n, 28) quote positions
        # Key j runs from just after quote 2j-1 (the line start for j = 0) to
        # quote 2j (the line end for the closing " />"); all widths are fixed.
        ok = q[:, 0] - line_start[lines] == _KEY_WIDTHS[0]
        ok &= line_end[lines] - q[:, 27] - 1 == _KEY_WIDTHS[14]
        ok &= (q[:, 2::2] - q[:, 1:27:2] - 1 == self.key_widths[1:14]).all(1)
        # Probe 3 bytes per key: the first two letters of the attribute name
        # (unique among FunkLoad's names) and its "=".
        key_start = np.empty((len(lines), 15), np.int32)
        key_start[:, 0] = line_start[lines]
        key_start[:, 1:] = q[:, 1::2] + 1
        probes = buf.take(key_start.take(self.probe_keys, axis=1) + self.probe_offsets, mode="clip")
        ok &= (probes == self.probe_bytes).all(1)
        value_start = q[:, 0::2] + 1
        value_width = q[:, 1::2] - value_start
        numeric = [*_INT_VALUES.values(), *_FLOAT_VALUES.values()]
        ok &= ((value_width[:, numeric] > 0) & (value_width[:, numeric] <= _MAX_NUMBER)).all(1)
        result_first = buf.take(value_start[:, _RESULT_VALUE])
        result_width = value_width[:, _RESULT_VALUE]
        result_last = buf.take(value_start[:, _RESULT_VALUE] + result_width - 1)
        result = np.full(len(lines), 255, np.uint8)
        for code, name in enumerate(RESULT_NAMES):  # others go to the generic parser
            raw_name = name.encode()
            result[
                (result_first == raw_name[0])
                & (result_last == raw_name[-1])
                & (result_width == len(raw_name))
            ] = code
        ok &= result != 255
        if not ok.all():
            lines, q = lines[ok], q[ok]
            value_start, value_width, result = value_start[ok], value_width[ok], result[ok]
        if not len(lines):
            return lines, {}
        if self.suite_name is None:
            first = data[int(line_start[lines[0]]) : int(line_end[lines[0]])].split(b'"')
            self.suite_name = (self.unescaped(first[7]), self.unescaped(first[9]))
        columns: dict[str, Any] = {"result": result}
        for name, j in _INT_VALUES.items():
            columns[name] = self.numbers(buf, value_start[:, j], value_width[:, j], np.int64)
        for name, j in _FLOAT_VALUES.items():
            columns[name] = self.numbers(buf, value_start[:, j], value_width[:, j], np.float64)
        table = self.table
        for name, j in _STRING_VALUES.items():
            ends = (value_start[:, j] + value_width[:, j]).tolist()
            values = [data[a:b] for a, b in zip(value_start[:, j].tolist(), ends, strict=True)]
            for value in dict.fromkeys(values):
                if value not in table:
                    table[value] = len(table)
            columns[name] = np.fromiter(map(table.__getitem__, values), np.uint32, len(values))
        return lines, columns

    def numbers(self, buf: Any, starts: Any, widths: Any, dtype: Any) -> Any:
        """Parse numbers where they lie: fixed-width gathers, converted in C."""
        np = self.np
        width = int(widths.max())
        offsets = np.arange(width, dtype=np.int32)
        if dtype is np.int64 and width <= 9:
            # Right-aligned digits times powers of ten: no string parsing at all.
            ends = starts + widths
            matrix = buf.take(ends[:, None] - width + offsets, mode="clip")
            matrix[offsets < width - widths[:, None]] = 48  # left padding: "0"
            digits = matrix - np.uint8(48)
            if (digits <= 9).all():  # else a sign or garbage: let the cast handle it
                return digits.astype(np.int64) @ self.powers[-width:]
        matrix = buf.take(starts[:, None] + offsets, mode="clip")
        matrix *= offsets < widths[:, None]
        strings = matrix.view(f"S{width}").ravel()
        try:
            return strings.astype(dtype)
        except ValueError:
            for index, value in enumerate(strings.tolist()):
                try:
                    (float if dtype is np.float64 else int)(value)
                except ValueError:
                    raise MarteauError(
                        f"{self.path}: bad number {value.decode('utf-8', 'replace')!r} in a "
                        f"<response> (block record {index})"
                    ) from None
            raise

    # -- the ResultSet --

    def result(self) -> Any:
        np = self.np
        # Decode/unescape each raw key once, then merge duplicates (the same
        # url written escaped differently, or met by both parsers).
        strings: list[str] = []
        final_ids: dict[str, int] = {}
        remap = np.zeros(len(self.table), np.uint32)
        for key, raw_id in self.table.items():
            if key.startswith(b"\0"):
                value = key[1:].decode("utf-8", "surrogatepass")
            else:
                value = self.unescaped(key)
            final = final_ids.get(value)
            if final is None:
                final = final_ids[value] = len(strings)
                strings.append(value)
            remap[raw_id] = final
        responses = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        for name in ("type", "url", "description"):
            responses[name] = remap[responses[name]]
        tests = np.array(self.tests, dtype=numpy_dtype(TEST_FIELDS))
        samples = np.zeros(0, numpy_dtype(SAMPLE_FIELDS))
        iterations = np.array(self.iterations, dtype=numpy_dtype(ITERATION_FIELDS))

        if self.suite_name is not None:
            self.config.setdefault("class", self.suite_name[0])
            self.config.setdefault("method", self.suite_name[1])
        if self.root and not self.closed:
            self.warn("missing </funkload> tag (the bench was probably killed)")
        if self.invalid_utf8:
            self.warn(f"{self.invalid_utf8} value(s) with invalid UTF-8 bytes, replaced")
        if self.unknown_results:
            self.warn(
                f"unknown result value(s) {', '.join(sorted(self.unknown_results))} "
                "counted as Error"
            )
        if self.dropped_warnings:
            self.warnings.append(f"{self.path}: {self.dropped_warnings} more warning(s)")
        return ResultSet(
            config=self.config,
            strings=strings,
            responses=responses,
            tests=tests,
            samples=samples,
            details=self.details,
            source=self.path,
            node=self.config.get("node", ""),
            monitors=self.monitors,
            warnings=self.warnings,
            iterations=iterations,
        )


def _check_start(path: str, head: bytes) -> None:
    stripped = head.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if stripped.startswith(b"<?xml"):
        end = stripped.find(b"?>")
        stripped = stripped[end + 2 :].lstrip() if end >= 0 else b""
    if not stripped:
        raise MarteauError(f"{path}: empty result file")
    if not stripped.startswith(_STARTS):
        line = 1 + head[: len(head) - len(stripped)].count(b"\n")
        raise MarteauError(f"{path}: line {line}: not a FunkLoad XML result file")


def read_xml(path: str | os.PathLike[str]) -> Any:
    """Read a FunkLoad XML result file (bench or ``fl-run-test``) into a `ResultSet`."""
    name = os.fspath(path)
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read results: {exc.strerror}") from exc
    reader = _XmlReader(name)
    with f:
        pending = f.read(4096)
        _check_start(name, pending)
        line = 1
        eof = False
        while not eof:
            chunk = f.read(_BLOCK)
            eof = not chunk
            pending += chunk
            if eof:
                data, pending = pending, b""
            else:
                tail = max(0, len(pending) - 1024 * 1024)
                cut = max(pending.rfind(b, tail) for b in _BOUNDARY)
                if cut < 0:
                    cut = max(pending.rfind(b) for b in _BOUNDARY)
                if cut <= 0:
                    continue  # no safe place to cut yet: read more
                data, pending = pending[: cut + 1], pending[cut + 1 :]
            if data:
                reader.block(data, line)
            line += data.count(b"\n")
    if not (reader.parts or reader.tests or reader.iterations or reader.config or reader.root):
        raise MarteauError(f"{name}: no FunkLoad records found")
    return reader.result()
