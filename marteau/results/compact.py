"""Marteau's compact result file (``*.mrt``): what a node records, cheaply.

Why not FunkLoad XML on the node: formatting one XML line costs ~4-22 µs,
packing one struct ~0.35 µs.  The XML is exported from this file afterwards
(`marteau.results.funkload_writer.export_xml`).

Layout::

    MARTEAU-RESULTS 1\\n                         magic line (version 1)
    chunk*                                       appended, flushed per cycle
    chunk = kind (1 byte) + length (u32 LE) + payload (length bytes)

Chunk kinds (one ASCII letter each):

``C`` config
    JSON object, FunkLoad ``<config>`` key -> string.  May appear several
    times (``addMetadata`` during the bench); a later value for a key wins.
``S`` strings
    JSON list of strings appended to the string table.  The table starts as
    ``[""]``: id 0 is always the empty string and is never written.
``D`` details
    JSON list of ``{"headers": [[k, v], ...], "body": str, "traceback": str}``
    appended to the detail list; detail ids are 1-based in file order.
``R`` responses / ``T`` tests / ``P`` samples
    Packed ``RESPONSE_STRUCT`` / ``TEST_STRUCT`` / ``SAMPLE_STRUCT`` records
    (`marteau.results.records`), any number per chunk.
    The key ``marteau:time`` is the bench start (FunkLoad's root ``time``).
``I`` iterations
    Packed ``ITERATION_STRUCT`` records: the open model's test iterations
    (intended start, real start, service time, dropped or not).  Only an
    open-model bench writes them; a closed-model file has none.
``M`` monitors
    JSON list of objects (FunkLoad ``<monitor>`` attributes, strings).
``E`` end
    Empty payload, written by a clean `CompactWriter.close`.

A chunk only refers to string and detail ids defined by earlier chunks, so
any prefix of whole chunks is a valid file: a killed bench leaves every
flushed cycle readable.  Readers ignore a truncated last chunk and a missing
end marker, with a warning; they skip unknown chunk kinds with a warning
(forward compatibility).

Node side readers (`iter_chunks`, `read_compact_raw`, `combine`) use only
the standard library; `read_compact` (controller side) returns numpy arrays.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from marteau.errors import MarteauError
from marteau.results.records import (
    ITERATION_FIELDS,
    ITERATION_STRUCT,
    RESPONSE_FIELDS,
    RESPONSE_STRUCT,
    SAMPLE_FIELDS,
    SAMPLE_STRUCT,
    TEST_FIELDS,
    TEST_STRUCT,
    numpy_dtype,
)
from marteau.results.resultset import ResultSet

MAGIC = b"MARTEAU-RESULTS 1\n"
MAGIC_PREFIX = b"MARTEAU-RESULTS "

CONFIG = b"C"
STRINGS = b"S"
DETAILS = b"D"
RESPONSES = b"R"
TESTS = b"T"
SAMPLES = b"P"
ITERATIONS = b"I"
MONITORS = b"M"
END = b"E"

# Config key holding the bench start (FunkLoad's root ``time`` attribute,
# isoformat).  The XML export writes it on the root, not as a <config> line.
ROOT_TIME_KEY = "marteau:time"
# Config key holding what a bench lost (a JSON list of one-line warnings: a
# late start, a cycle shorter than planned or without a finished test).
LOST_KEY = "marteau:lost"


def lost_load(config: dict[str, str]) -> list[str]:
    """The warnings a bench stored under `LOST_KEY` ([] when none or unreadable)."""
    try:
        value = json.loads(config.get(LOST_KEY) or "[]")
    except ValueError:
        return [f"unreadable {LOST_KEY} entry: {config[LOST_KEY][:80]!r}"]
    return [str(item) for item in value] if isinstance(value, list) else []


KNOWN_KINDS = frozenset(
    (CONFIG, STRINGS, DETAILS, RESPONSES, TESTS, SAMPLES, ITERATIONS, MONITORS, END)
)
RECORD_STRUCTS = {
    RESPONSES: RESPONSE_STRUCT,
    TESTS: TEST_STRUCT,
    SAMPLES: SAMPLE_STRUCT,
    ITERATIONS: ITERATION_STRUCT,
}

_HEADER = struct.Struct("<cI")
MAX_CHUNK = 0xFFFFFFFF

# Positions of string and detail ids inside the packed records (for combine()).
_RESPONSE_STRING_FIELDS = tuple(
    i for i, (name, _, _) in enumerate(RESPONSE_FIELDS) if name in ("type", "url", "description")
)
_RESPONSE_DETAIL = [name for name, _, _ in RESPONSE_FIELDS].index("detail")
_TEST_DETAIL = [name for name, _, _ in TEST_FIELDS].index("detail")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class CompactWriter:
    """Appends chunks to a new compact file; `close` writes the end marker.

    Not thread-safe by itself: the `Recorder` serialises its flushes.
    """

    def __init__(self, path: str | os.PathLike[str], config: dict[str, str] | None = None):
        self.path = os.fspath(path)
        try:
            self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise MarteauError(f"{self.path}: cannot write results: {exc.strerror}") from exc
        self._file.write(MAGIC)
        self.closed = False
        if config:
            self.config(config)
        self._file.flush()

    def chunk(self, kind: bytes, payload: bytes | bytearray | memoryview) -> None:
        """Append one chunk (kept whole: payloads above 4 GiB are split by callers)."""
        if len(payload) > MAX_CHUNK:
            raise ValueError("chunk payload over 4 GiB")
        self._file.write(_HEADER.pack(kind, len(payload)))
        self._file.write(payload)

    def config(self, entries: dict[str, str]) -> None:
        self.chunk(CONFIG, _json({str(k): str(v) for k, v in entries.items()}))

    def strings(self, strings: list[str]) -> None:
        if strings:
            self.chunk(STRINGS, _json(strings))

    def details(self, details: list[dict[str, Any]]) -> None:
        if details:
            self.chunk(DETAILS, _json(details))

    def monitors(self, monitors: list[dict[str, str]]) -> None:
        if monitors:
            self.chunk(MONITORS, _json(monitors))

    def records(self, kind: bytes, data: bytes | bytearray | memoryview) -> None:
        """Packed records; split so that no chunk exceeds the u32 length."""
        size = RECORD_STRUCTS[kind].size
        step = (MAX_CHUNK // size) * size
        view = memoryview(data)
        for start in range(0, len(view), step):
            self.chunk(kind, view[start : start + step])

    def flush(self) -> None:
        """Hand the bytes to the OS (no fsync: surviving a killed process is enough)."""
        self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self.chunk(END, b"")
            self._file.close()
            self.closed = True

    def __enter__(self) -> CompactWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_compact(path: str | os.PathLike[str]) -> bool:
    """Does the file start with the compact magic line?"""
    with open(path, "rb") as f:
        return f.read(len(MAGIC_PREFIX)) == MAGIC_PREFIX


def iter_chunks(
    path: str | os.PathLike[str],
    warnings: list[str] | None = None,
    *,
    skip: frozenset[bytes] = frozenset(),
    spans: list[tuple[int, int]] | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(kind, payload)`` for every whole chunk, streaming.

    Problems that lose nothing already written (truncated last chunk, no end
    marker, unknown kinds) go to `warnings`; a file that is not a compact
    result file raises `MarteauError`.  Kinds in `skip` are seeked over and
    yielded with an empty payload; with `spans`, the (payload offset,
    length) of each is appended to it before it is yielded, and a truncated
    one is reported with the same words as when it is read.
    """
    name = os.fspath(path)
    warn = warnings.append if warnings is not None else (lambda _message: None)
    with _open_compact(name) as f:
        offset = len(MAGIC)
        ended = False
        while True:
            header = f.read(_HEADER.size)
            if not header:
                break
            if len(header) < _HEADER.size:
                warn(
                    f"{name}: truncated chunk header at byte {offset} ignored "
                    "(the writer was probably killed)"
                )
                break
            kind, length = _HEADER.unpack(header)
            payload, have = _payload(f, length, kind in skip, spans)
            if have < length:
                read = "" if kind in skip and spans is None else f" ({have} of {length} bytes)"
                warn(
                    f"{name}: truncated last chunk at byte {offset}{read} ignored "
                    "(the writer was probably killed)"
                )
                break
            offset += _HEADER.size + length
            if kind == END:
                ended = True
                continue
            if kind not in KNOWN_KINDS:
                warn(f"{name}: unknown chunk kind {kind!r} at byte {offset} skipped")
                continue
            yield kind, payload
        if not ended:
            warn(f"{name}: no end marker: the bench did not close its results (killed?)")


def _open_compact(name: str) -> IO[bytes]:
    """The file, positioned after its magic line; `MarteauError` if it is not ours."""
    try:
        f = open(name, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read results: {exc.strerror}") from exc
    magic = f.readline(64)
    if magic != MAGIC:
        f.close()
        if magic.startswith(MAGIC_PREFIX):
            raise MarteauError(
                f"{name}: compact result format {magic[len(MAGIC_PREFIX) :].strip()!r} "
                "is newer than this Marteau"
            )
        raise MarteauError(f"{name}: not a Marteau compact result file (bad magic line)")
    return f


def _payload(
    f: IO[bytes], length: int, skip: bool, spans: list[tuple[int, int]] | None
) -> tuple[bytes, int]:
    """(payload, bytes of it in the file): read, or seeked over (b"") when `skip`.

    A skipped payload's span goes to `spans` when it is whole.
    """
    if not skip:
        payload = f.read(length)
        return payload, len(payload)
    start = f.tell()
    f.seek(length, os.SEEK_CUR)  # seeking past the end succeeds silently: check the size
    have = min(length, max(0, os.fstat(f.fileno()).st_size - start))
    if have == length and spans is not None:
        spans.append((start, length))
    return b"", have


def decode_json_chunk(path: str, kind: bytes, payload: bytes) -> Any:
    """Parse a JSON chunk; a whole chunk that does not parse is corruption."""
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise MarteauError(f"{path}: corrupt {kind.decode()!r} chunk: {exc}") from exc
    expected = dict if kind == CONFIG else list
    if not isinstance(value, expected):
        raise MarteauError(
            f"{path}: corrupt {kind.decode()!r} chunk: not a JSON {expected.__name__}"
        )
    return value


@dataclass
class RawCompact:
    """A compact file read without numpy: tables decoded, records still packed."""

    path: str
    config: dict[str, str] = field(default_factory=dict)
    strings: list[str] = field(default_factory=lambda: [""])
    details: list[dict[str, Any]] = field(default_factory=list)
    responses: bytearray = field(default_factory=bytearray)
    tests: bytearray = field(default_factory=bytearray)
    samples: bytearray = field(default_factory=bytearray)
    iterations: bytearray = field(default_factory=bytearray)
    monitors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _whole_records(name: str, kind: bytes, length: int, warnings: list[str]) -> int:
    """The bytes of whole records in a record chunk of `length` bytes (warns on a rest)."""
    size = RECORD_STRUCTS[kind].size
    extra = length % size
    if extra:
        warnings.append(
            f"{name}: {kind.decode()!r} chunk of {length} bytes is not a whole "
            f"number of {size}-byte records; last {extra} bytes dropped"
        )
    return length - extra


def _aligned(name: str, kind: bytes, payload: bytes, warnings: list[str]) -> bytes:
    whole = _whole_records(name, kind, len(payload), warnings)
    return payload if whole == len(payload) else payload[:whole]


def read_compact_raw(path: str | os.PathLike[str]) -> RawCompact:
    """Read a whole compact file into memory (node side, no numpy)."""
    name = os.fspath(path)
    raw = RawCompact(name)
    buffers = {
        RESPONSES: raw.responses,
        TESTS: raw.tests,
        SAMPLES: raw.samples,
        ITERATIONS: raw.iterations,
    }
    for kind, payload in iter_chunks(name, raw.warnings):
        if kind in buffers:
            buffers[kind] += _aligned(name, kind, payload, raw.warnings)
        elif kind == CONFIG:
            raw.config.update(
                {str(k): str(v) for k, v in decode_json_chunk(name, kind, payload).items()}
            )
        elif kind == STRINGS:
            raw.strings.extend(decode_json_chunk(name, kind, payload))
        elif kind == DETAILS:
            raw.details.extend(decode_json_chunk(name, kind, payload))
        elif kind == MONITORS:
            raw.monitors.extend(decode_json_chunk(name, kind, payload))
    return raw


@dataclass
class CompactScan:
    """A compact file's tables, its records located but not read yet (controller side).

    Why: `read_compact` then reads the records straight into arrays of the
    right size (no growing buffer, no copy), and the report's merge of
    several nodes reads each node's records into its slice of the merged
    arrays (`read_records`).
    """

    raw: RawCompact  # config, strings, details, monitors, warnings; no records
    spans: dict[bytes, list[tuple[int, int]]]  # kind -> (offset, bytes of whole records)

    def count(self, kind: bytes) -> int:
        """Number of `kind` records."""
        return sum(length for _, length in self.spans[kind]) // RECORD_STRUCTS[kind].size


def scan_compact(path: str | os.PathLike[str]) -> CompactScan:
    """Read a compact file's tables and locate its record chunks (same warnings as reading)."""
    name = os.fspath(path)
    raw = RawCompact(name)
    spans: dict[bytes, list[tuple[int, int]]] = {kind: [] for kind in RECORD_STRUCTS}
    located: list[tuple[int, int]] = []
    skip = frozenset(spans)
    for kind, payload in iter_chunks(name, raw.warnings, skip=skip, spans=located):
        if kind in spans:
            offset, length = located[-1]
            spans[kind].append((offset, _whole_records(name, kind, length, raw.warnings)))
        elif kind == CONFIG:
            raw.config.update(
                {str(k): str(v) for k, v in decode_json_chunk(name, kind, payload).items()}
            )
        elif kind == STRINGS:
            raw.strings.extend(decode_json_chunk(name, kind, payload))
        elif kind == DETAILS:
            raw.details.extend(decode_json_chunk(name, kind, payload))
        elif kind == MONITORS:
            raw.monitors.extend(decode_json_chunk(name, kind, payload))
    return CompactScan(raw, spans)


def read_records(scan: CompactScan, kind: bytes, out: Any) -> None:
    """Read the `kind` records of a scanned file into `out` (contiguous, `count` records)."""
    target = memoryview(out.view("u1"))
    name = scan.raw.path
    if len(target) != sum(length for _, length in scan.spans[kind]):
        raise ValueError(f"{name}: {len(target)} bytes given for {kind.decode()!r} records")
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise MarteauError(f"{name}: cannot read results: {exc.strerror}") from exc
    with f:
        at = 0
        for offset, length in scan.spans[kind]:
            f.seek(offset)
            done = 0
            while done < length:
                got = f.readinto(target[at + done : at + length])
                if not got:
                    raise MarteauError(f"{name}: changed while being read")
                done += got
            at += length


def resultset_of(
    scan: CompactScan, responses: Any, tests: Any, samples: Any, iterations: Any = None
) -> ResultSet:
    """The `ResultSet` of a scanned file, given its record arrays (iterations read here
    when not given: an open-model node has a few per test, never a merge's bulk)."""
    raw = scan.raw
    if iterations is None:
        iterations = read_iterations(scan)
    return ResultSet(
        config=raw.config,
        strings=raw.strings,
        responses=responses,
        tests=tests,
        samples=samples,
        details=raw.details,
        source=raw.path,
        node=raw.config.get("node", ""),
        monitors=raw.monitors,
        warnings=raw.warnings,
        iterations=iterations,
    )


RECORD_FIELDS = {
    RESPONSES: RESPONSE_FIELDS,
    TESTS: TEST_FIELDS,
    SAMPLES: SAMPLE_FIELDS,
    ITERATIONS: ITERATION_FIELDS,
}


def read_iterations(scan: CompactScan) -> Any:
    """The open model's iteration records of a scanned file (an empty array when none)."""
    import numpy

    array = numpy.empty(scan.count(ITERATIONS), dtype=numpy_dtype(ITERATION_FIELDS))
    read_records(scan, ITERATIONS, array)
    return array


def read_compact(path: str | os.PathLike[str]) -> Any:
    """Read a compact file into a `ResultSet` of numpy arrays (controller side)."""
    import numpy

    scan = scan_compact(path)
    arrays = []
    for kind in (RESPONSES, TESTS, SAMPLES):
        array = numpy.empty(scan.count(kind), dtype=numpy_dtype(RECORD_FIELDS[kind]))
        read_records(scan, kind, array)
        arrays.append(array)
    return resultset_of(scan, *arrays)


def combine(paths: Iterable[str | os.PathLike[str]], out_path: str | os.PathLike[str]) -> list[str]:
    """Merge the files of one node's worker processes into one node file.

    String ids are remapped into one table and detail ids shifted; thread
    ids are kept (the engine makes them unique per node).  Configs are
    merged in order, a later value winning.  Streams chunk by chunk.
    Returns the warnings (truncated inputs and the like).
    """
    warnings: list[str] = []
    table: dict[str, int] = {"": 0}
    details_written = 0
    started: list[str] = []
    with CompactWriter(out_path) as out:
        for path in paths:
            name = os.fspath(path)
            local: list[int] = [0]  # this file's string id -> merged id
            detail_base = details_written
            for kind, payload in iter_chunks(name, warnings):
                if kind == STRINGS:
                    new: list[str] = []
                    for s in decode_json_chunk(name, kind, payload):
                        sid = table.get(s)
                        if sid is None:
                            sid = table[s] = len(table)
                            new.append(s)
                        local.append(sid)
                    out.strings(new)
                elif kind == DETAILS:
                    details = decode_json_chunk(name, kind, payload)
                    details_written += len(details)
                    out.chunk(kind, payload)
                elif kind == RESPONSES:
                    data = _aligned(name, kind, payload, warnings)
                    out.records(kind, _remap_responses(data, local, detail_base))
                elif kind == TESTS:
                    data = _aligned(name, kind, payload, warnings)
                    out.records(kind, _remap_tests(data, detail_base))
                else:  # config, samples, iterations, monitors: ids-free
                    if kind == CONFIG:
                        value = decode_json_chunk(name, kind, payload).get(ROOT_TIME_KEY)
                        if value:
                            started.append(str(value))
                    if kind in (SAMPLES, ITERATIONS):
                        payload = _aligned(name, kind, payload, warnings)
                    out.chunk(kind, payload)
            out.flush()
        if started:  # the earliest worker start is the node's bench start
            out.config({ROOT_TIME_KEY: min(started)})
    return warnings


def _remap_responses(data: bytes, local: list[int], detail_base: int) -> bytearray:
    out = bytearray()
    pack = RESPONSE_STRUCT.pack
    t_i, u_i, d_i = _RESPONSE_STRING_FIELDS
    det_i = _RESPONSE_DETAIL
    for rec in RESPONSE_STRUCT.iter_unpack(data):
        fields = list(rec)
        fields[t_i] = local[fields[t_i]]
        fields[u_i] = local[fields[u_i]]
        fields[d_i] = local[fields[d_i]]
        if fields[det_i]:
            fields[det_i] += detail_base
        out += pack(*fields)
    return out


def _remap_tests(data: bytes, detail_base: int) -> bytes | bytearray:
    if not detail_base:
        return data
    out = bytearray()
    pack = TEST_STRUCT.pack
    det_i = _TEST_DETAIL
    for rec in TEST_STRUCT.iter_unpack(data):
        if rec[det_i]:
            fields = list(rec)
            fields[det_i] += detail_base
            out += pack(*fields)
        else:
            out += pack(*rec)
    return out
