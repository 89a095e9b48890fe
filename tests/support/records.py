"""Result records made by hand: the keyword arguments of one response or test result,
a ResultSet from plain dicts, and a FunkLoad XML result file read strictly."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from marteau.results.records import (
    RESPONSE_FIELDS,
    RESULT_CODES,
    SAMPLE_FIELDS,
    TEST_FIELDS,
    numpy_dtype,
)
from marteau.results.resultset import ResultSet


def response_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        cycle=0,
        cvus=1,
        thread=0,
        suite="Simple",
        name="test_simple",
        step=1,
        number=1,
        type="get",
        result="Successful",
        url="/index.html",
        code=200,
        description="Get URL",
        time=1433152801.12,
        duration=0.0042,
    )
    kwargs.update(overrides)
    return kwargs


def result_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        cycle=0,
        cvus=1,
        thread=0,
        suite="Simple",
        name="test_simple",
        time=1433152801.1,
        result="Successful",
        steps=20,
        duration=0.31,
        connection_duration=0.11,
        requests=21,
        pages=20,
        xmlrpc=0,
        redirects=0,
        images=1,
        links=0,
    )
    kwargs.update(overrides)
    return kwargs


def make_rs(
    responses: list[dict[str, Any]] = (),  # type: ignore[assignment]
    tests: list[dict[str, Any]] = (),  # type: ignore[assignment]
    config: dict[str, str] | None = None,
    source: str = "synthetic.xml",
    samples: list[dict[str, Any]] = (),  # type: ignore[assignment]
    details: list[dict[str, Any]] | None = None,
) -> ResultSet:
    """A ResultSet from plain dicts; strings (type/url/description) and results by name."""
    strings = [""]
    ids: dict[str, int] = {"": 0}

    def sid(text: str) -> int:
        if text not in ids:
            ids[text] = len(strings)
            strings.append(text)
        return ids[text]

    r = np.zeros(len(responses), numpy_dtype(RESPONSE_FIELDS))
    for i, row in enumerate(responses):
        row = {
            "cycle": 0,
            "cvus": 1,
            "thread": 0,
            "step": 1,
            "number": 1,
            "code": 200,
            "result": "Successful",
            "type": "get",
            "url": "/",
            "description": "",
            **row,
        }
        for name, _, _ in RESPONSE_FIELDS:
            value = row.get(name, 0)
            if name in ("type", "url", "description"):
                value = sid(value)
            elif name == "result":
                value = RESULT_CODES[value]
            r[i][name] = value
    t = np.zeros(len(tests), numpy_dtype(TEST_FIELDS))
    for i, row in enumerate(tests):
        row = {"cycle": 0, "cvus": 1, "result": "Successful", **row}
        for name, _, _ in TEST_FIELDS:
            value = row.get(name, 0)
            if name == "result":
                value = RESULT_CODES[value]
            t[i][name] = value
    s = np.zeros(len(samples), numpy_dtype(SAMPLE_FIELDS))
    for i, row in enumerate(samples):
        for name, value in row.items():
            s[i][name] = value
    return ResultSet(
        config={"id": "test_x", "cycles": "[1]", "duration": "10", **(config or {})},
        strings=strings,
        responses=r,
        tests=t,
        samples=s,
        details=details or [],
        source=source,
    )


def parse_xml(path: Path) -> tuple[dict[str, str], list[ET.Element], list[ET.Element]]:
    root = ET.parse(path).getroot()  # strict: the file must be well-formed
    assert root.tag == "funkload"
    config = {item.get("key"): item.get("value") for item in root.iter("config")}
    return config, root.findall("response"), root.findall("testResult")
