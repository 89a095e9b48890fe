"""The shape of one recorded request, test and resource sample.

This module is the contract between the engine (which records on the hot
path), the result files (which store records as packed structs) and the
report (which reads them back as numpy structured arrays).  Strings (url,
description, type) are stored once in a string table and referred to by id;
long payloads (failure headers and body, tracebacks) are "details" referred
to by a 1-based id, 0 meaning none.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

SUCCESSFUL, FAILURE, ERROR = 0, 1, 2
RESULT_NAMES = ("Successful", "Failure", "Error")
RESULT_CODES = {name: code for code, name in enumerate(RESULT_NAMES)}

# (name, struct code, numpy type) in file order; little endian, no padding.
RESPONSE_FIELDS = (
    ("time", "d", "<f8"),  # request start, epoch seconds
    ("duration", "d", "<f8"),  # seconds
    ("cycle", "H", "<u2"),  # cycle index, from 0
    ("cvus", "I", "<u4"),  # concurrent users of the cycle on this node
    ("thread", "I", "<u4"),  # virtual user id, unique on the node
    ("step", "I", "<u4"),  # page index inside the test, from 1
    ("number", "H", "<u2"),  # request index inside the page, from 1
    ("code", "i", "<i4"),  # HTTP status, -1 for an error
    ("result", "B", "u1"),  # SUCCESSFUL / FAILURE / ERROR
    ("type", "I", "<u4"),  # string id: get, post, image, link, xmlrpc, ...
    ("url", "I", "<u4"),  # string id: path+query (full url for errors)
    ("description", "I", "<u4"),  # string id ("" when none)
    ("detail", "I", "<u4"),  # detail id: headers/body/traceback, 0 = none
)

TEST_FIELDS = (
    ("time", "d", "<f8"),  # test start, epoch seconds
    ("duration", "d", "<f8"),  # whole test incl. setUp/tearDown/sleeps
    ("connection_duration", "d", "<f8"),  # sum of request durations
    ("cycle", "H", "<u2"),
    ("cvus", "I", "<u4"),
    ("thread", "I", "<u4"),
    ("result", "B", "u1"),
    ("steps", "I", "<u4"),
    ("requests", "I", "<u4"),
    ("pages", "I", "<u4"),
    ("xmlrpc", "I", "<u4"),
    ("redirects", "I", "<u4"),
    ("images", "I", "<u4"),
    ("links", "I", "<u4"),
    ("detail", "I", "<u4"),  # traceback detail id, 0 = none
)

# One sample per second per generator process: its own CPU use and the
# number of users alive, so a report can flag an overloaded generator.
SAMPLE_FIELDS = (
    ("time", "d", "<f8"),
    ("cpu_percent", "f", "<f4"),  # of one core
    ("users", "I", "<u4"),
    ("worker", "H", "<u2"),
)


# One test iteration of the open model (arrival-rate cycles), recorded beside its
# test record: when it was meant to start, so that its latency counts the time it
# waited for the generator or the target (coordinated omission), and the pool of
# users it found.  Closed-model results have none.
ITERATION_FIELDS = (
    ("intended", "d", "<f8"),  # planned start, epoch seconds
    ("time", "d", "<f8"),  # real start (the intended one for a dropped iteration)
    ("duration", "d", "<f8"),  # real start to end (0 when dropped): the service time
    ("cycle", "H", "<u2"),  # the cycle that scheduled it
    ("thread", "I", "<u4"),  # the virtual user that ran it (0 when dropped)
    ("worker", "I", "<u4"),  # generator process (unique per node; per bench once merged)
    ("result", "B", "u1"),  # SUCCESSFUL / FAILURE / ERROR / DROPPED
    ("users", "I", "<u4"),  # users of the process busy when it started, itself included
)
DROPPED = 3  # an iteration that found every user of the pool busy: not run, counted
ITERATION_RESULTS = (*RESULT_NAMES, "Dropped")


def _struct(fields: tuple[tuple[str, str, str], ...]) -> struct.Struct:
    return struct.Struct("<" + "".join(code for _, code, _ in fields))


RESPONSE_STRUCT = _struct(RESPONSE_FIELDS)
TEST_STRUCT = _struct(TEST_FIELDS)
SAMPLE_STRUCT = _struct(SAMPLE_FIELDS)
ITERATION_STRUCT = _struct(ITERATION_FIELDS)


def numpy_dtype(fields: tuple[tuple[str, str, str], ...]) -> Any:
    """The numpy dtype whose layout equals the packed struct (controller side only)."""
    import numpy

    return numpy.dtype([(name, np_type) for name, _, np_type in fields])


# The record methods' arguments in the order they take them by position (see `ResultSink`).
RESPONSE_ARGS = (
    "cycle", "cvus", "thread", "suite", "name", "step", "number", "type", "result", "url",
    "code", "description", "time", "duration", "traceback", "headers", "body",
)  # fmt: skip
TEST_RESULT_ARGS = (
    "cycle", "cvus", "thread", "suite", "name", "time", "result", "steps", "duration",
    "connection_duration", "requests", "pages", "xmlrpc", "redirects", "images", "links",
    "traceback",
)  # fmt: skip


class ResultSink(Protocol):
    """Where the FunkLoad API sends what it records.

    In bench mode the engine's recorder implements it (compact binary,
    dropping what arrives while ``recording`` is False); in functional mode
    (``marteau test``) a sink writes FunkLoad's root-less XML lines.

    The record methods take their fields by keyword or, on the hot path (every
    request, every test), by position in the order below: a compiled recorder
    parses keywords at three times the cost of positions.
    """

    recording: bool

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
    ) -> None: ...

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
    ) -> None: ...

    def config(self, key: str, value: str) -> None:
        """A `<config>` entry, e.g. ``meta:<k>`` from ``addMetadata``."""
