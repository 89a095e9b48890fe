"""The bench recorder: every request and test of one worker process, cheaply.

It sits on the hot path of the load generator, so a recorded response costs
a few dict lookups, one ``Struct.pack`` and one ``bytearray`` append (about
a microsecond); nothing is formatted and nothing touches the disk until
`Recorder.flush`, which the bench runner calls at the end of every cycle and
about every second, from its own thread.

Concurrency (CPython with the GIL): user threads append packed records with
a single C-level ``bytearray`` operation and never take a lock except to
intern a string the process has not seen yet or to create a failure detail.
`flush` copies a buffer and deletes exactly the copied prefix (two atomic
operations: what users append in between stays at the end), and takes the
new strings and details *after* the records, so every id a flushed record
uses is written in an earlier chunk of the file.
"""

from __future__ import annotations

import datetime
import itertools
import os
import struct
import threading
import time as _time
from dataclasses import dataclass
from typing import Any

from marteau.results.compact import (
    ITERATIONS,
    RESPONSES,
    ROOT_TIME_KEY,
    SAMPLES,
    TESTS,
    CompactWriter,
)
from marteau.results.records import (
    ERROR,
    FAILURE,
    ITERATION_STRUCT,
    RESPONSE_FIELDS,
    RESPONSE_STRUCT,
    RESULT_CODES,
    SAMPLE_STRUCT,
    SUCCESSFUL,
    TEST_STRUCT,
)

# A failure body is kept for the report's error section, not as an archive:
# above this size it is cut and the detail says how big it was.
MAX_BODY = 1024 * 1024

# Where a packed response record keeps its duration (`pending_durations`).
_DURATION = struct.Struct("<d")
_DURATION_FIELD = [name for name, _, _ in RESPONSE_FIELDS].index("duration")
_BEFORE_DURATION = RESPONSE_FIELDS[:_DURATION_FIELD]  # (no call in a slice: mypyc)
_DURATION_OFFSET = struct.calcsize("<" + "".join(code for _, code, _ in _BEFORE_DURATION))


@dataclass(frozen=True)
class Counts:
    """What was recorded since the previous `Recorder.snapshot` (console)."""

    successes: int = 0
    failures: int = 0
    errors: int = 0
    tests_successful: int = 0
    tests_failure: int = 0
    tests_error: int = 0

    @property
    def responses(self) -> int:
        return self.successes + self.failures + self.errors

    @property
    def tests(self) -> int:
        return self.tests_successful + self.tests_failure + self.tests_error


def _count_value(counter: itertools.count[int]) -> int:
    # itertools.count is incremented atomically by next(); its repr is the
    # only stable way to read it without incrementing.
    return int(repr(counter)[6:-1])


class Recorder:
    """A `ResultSink` writing a compact result file (one per worker process).

    ``recording`` is a plain attribute flipped by the bench runner: what is
    logged while it is False is dropped (FunkLoad records only what *ends*
    inside the recording window).  Config entries are always kept.  The
    ``suite`` and ``name`` of every record are the ones given here (one test
    method per bench); they are stored as the ``class``/``method`` config
    keys unless the config already has them, and the creation time as the
    bench start (``marteau:time``, FunkLoad's root ``time``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: dict[str, str] | None = None,
        *,
        suite: str,
        name: str,
        worker: int = 0,
    ) -> None:
        self.recording = False
        self.path = os.fspath(path)
        self.suite = suite
        self.name = name
        self.worker = worker
        config = dict(config or {})
        config.setdefault("class", suite)
        config.setdefault("method", name)
        config.setdefault(ROOT_TIME_KEY, datetime.datetime.now().isoformat())
        self._writer = CompactWriter(self.path, config)
        self._ids: dict[str, int] = {"": 0}
        self._new_strings: list[str] = []
        self._details: list[dict[str, Any]] = []
        self._detail_count = 0
        self._config: dict[str, str] = {}
        self._responses = bytearray()
        self._tests = bytearray()
        self._samples = bytearray()
        self._iterations = bytearray()
        self._lock = threading.Lock()  # strings, details, config
        self._flush_lock = threading.Lock()  # one flusher at a time
        self._response_counters = (itertools.count(), itertools.count(), itertools.count())
        # responses outside the recording windows: not in the results, seen by the fuse
        self._unrecorded_counters = (itertools.count(), itertools.count(), itertools.count())
        self._test_counters = (itertools.count(), itertools.count(), itertools.count())
        self._last_counts = [0] * 6
        self._pack_response = RESPONSE_STRUCT.pack
        self._pack_test = TEST_STRUCT.pack

    # -- ResultSink -----------------------------------------------------------

    def response(
        self,
        cycle: int,
        cvus: int,
        thread: int,
        suite: str,
        name: str,
        step: int,
        number: int,
        type: str,
        result: str,
        url: str,
        code: int,
        description: str,
        time: float,
        duration: float,
        traceback: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> None:
        """Record one request (dropped unless recording, but counted for the fuse)."""
        if not self.recording:
            next(self._unrecorded_counters[RESULT_CODES[result]])
            return
        ids = self._ids
        type_id = ids.get(type)
        if type_id is None:
            type_id = self._intern(type)
        url_id = ids.get(url)
        if url_id is None:
            url_id = self._intern(url)
        description_id = ids.get(description)
        if description_id is None:
            description_id = self._intern(description)
        code_r = RESULT_CODES[result]
        detail = self._detail(headers, body, traceback) if code_r else 0
        self._responses += self._pack_response(
            time,
            duration,
            cycle,
            cvus,
            thread,
            step,
            number,
            code,
            code_r,
            type_id,
            url_id,
            description_id,
            detail,
        )
        next(self._response_counters[code_r])

    def test_result(
        self,
        cycle: int,
        cvus: int,
        thread: int,
        suite: str,
        name: str,
        time: float,
        result: str,
        steps: int,
        duration: float,
        connection_duration: float,
        requests: int,
        pages: int,
        xmlrpc: int,
        redirects: int,
        images: int,
        links: int,
        traceback: str | None = None,
    ) -> None:
        """Record one finished test (dropped unless recording)."""
        if not self.recording:
            return
        code_r = RESULT_CODES[result]
        detail = self._detail(None, None, traceback) if code_r and traceback else 0
        self._tests += self._pack_test(
            time,
            duration,
            connection_duration,
            cycle,
            cvus,
            thread,
            code_r,
            steps,
            requests,
            pages,
            xmlrpc,
            redirects,
            images,
            links,
            detail,
        )
        next(self._test_counters[code_r])

    def config(self, key: str, value: str) -> None:
        """A ``<config>`` entry (``addMetadata``): kept even when not recording."""
        with self._lock:
            self._config[str(key)] = str(value)

    # -- also recorded --------------------------------------------------------

    def sample(self, cpu_percent: float, users: int, time: float | None = None) -> None:
        """This process's CPU use and live users, about once a second.

        Kept whatever ``recording`` says: an overloaded generator during
        staging explains the numbers of the next cycle too.
        """
        self._samples += SAMPLE_STRUCT.pack(
            _time.time() if time is None else time, cpu_percent, users, self.worker
        )

    def iteration(
        self,
        intended: float,
        time: float,
        duration: float,
        cycle: int,
        thread: int,
        result: int,
        users: int,
    ) -> None:
        """One test iteration of the open model (or a dropped one), whatever ``recording``
        says: the runner keeps a cycle's iterations, the report picks them by their
        intended start and end against the window."""
        self._iterations += ITERATION_STRUCT.pack(
            intended, time, duration, cycle, thread, self.worker, result, users
        )

    def snapshot(self) -> Counts:
        """Counts since the previous snapshot, for the live console (cheap)."""
        with self._lock:
            now = [_count_value(c) for c in (*self._response_counters, *self._test_counters)]
            delta = [a - b for a, b in zip(now, self._last_counts, strict=True)]
            self._last_counts = now
        return Counts(*delta)

    def totals(self) -> Counts:
        """Counts since the recorder was created."""
        return Counts(*[_count_value(c) for c in (*self._response_counters, *self._test_counters)])

    def responses_seen(self) -> tuple[int, int]:
        """(responses, failed ones) since the recorder was created, recorded or not:
        a target failing during a ramp-up, outside the windows, trips the fuse too."""
        counts = [
            _count_value(recorded) + _count_value(unrecorded)
            for recorded, unrecorded in zip(
                self._response_counters, self._unrecorded_counters, strict=True
            )
        ]
        return sum(counts), counts[1] + counts[2]

    def pending_durations(self, limit: int) -> tuple[int, list[float]]:
        """Responses recorded since the last flush, and up to ``limit`` of their durations.

        For the safety fuse (`marteau.engine.fuse`), read from the buffer the
        next flush writes, on the thread that appends to it: no copy, and
        nothing added to the hot path.
        """
        size = RESPONSE_STRUCT.size
        buffer = self._responses
        count = len(buffer) // size
        taken = min(count, limit)
        if not taken:
            return count, []
        step = count / taken
        unpack = _DURATION.unpack_from
        durations = [
            unpack(buffer, int(i * step) * size + _DURATION_OFFSET)[0] for i in range(taken)
        ]
        return count, durations

    # -- file -----------------------------------------------------------------

    def flush(self) -> None:
        """Write what was recorded since the last flush; safe from any thread."""
        with self._flush_lock:
            writer = self._writer
            if writer.closed:
                return
            # Records first, then the strings/details they may refer to:
            # anything interned before a record was appended is taken too.
            records = []
            for kind, buffer in (
                (RESPONSES, self._responses),
                (TESTS, self._tests),
                (SAMPLES, self._samples),
                (ITERATIONS, self._iterations),
            ):
                data = bytes(buffer)  # atomic copy ...
                size = len(data)  # (not in the slice: mypyc would call it twice)
                del buffer[:size]  # ... and atomic removal of that prefix only
                records.append((kind, data))
            with self._lock:
                strings, self._new_strings = self._new_strings, []
                details, self._details = self._details, []
                config, self._config = self._config, {}
            if config:
                writer.config(config)
            writer.strings(strings)
            writer.details(details)
            for kind, data in records:
                if data:
                    writer.records(kind, data)
            writer.flush()

    def close(self) -> None:
        """Flush and write the end marker; later records are dropped."""
        self.recording = False
        self.flush()
        with self._flush_lock:
            self._writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- slow paths -----------------------------------------------------------

    def _intern(self, value: str) -> int:
        with self._lock:
            string_id = self._ids.get(value)
            if string_id is None:
                string_id = len(self._ids)
                self._new_strings.append(value)
                self._ids[value] = string_id
            return string_id

    def _detail(
        self,
        headers: list[tuple[str, str]] | None,
        body: bytes | None,
        traceback: str | None,
    ) -> int:
        detail: dict[str, Any] = {
            "headers": [[str(k), str(v)] for k, v in headers or ()],
            "body": "",
            "traceback": traceback or "",
        }
        if body:
            if isinstance(body, str):
                body = body.encode("utf-8", "surrogateescape")
            if len(body) > MAX_BODY:
                detail["body_size"] = len(body)  # cut: the report says so
                body = body[:MAX_BODY]
            detail["body"] = body.decode("utf-8", "replace")
        with self._lock:
            self._details.append(detail)
            self._detail_count += 1
            return self._detail_count


__all__ = ["Counts", "MAX_BODY", "Recorder", "SUCCESSFUL", "FAILURE", "ERROR"]
