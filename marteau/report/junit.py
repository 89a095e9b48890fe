"""``junit.xml`` from threshold results: what Jenkins, GitLab and GitHub display.

One ``<testsuite>`` with one ``<testcase>`` per threshold, and a
``<failure message=...>`` inside each violated one: the common subset of
the JUnit XML dialects those CI systems read.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

JUNIT_NAME = "junit.xml"
SUITE_NAME = "marteau.thresholds"


def junit_tree(report: dict[str, Any]) -> ET.Element:
    """The ``<testsuite>`` element for a thresholds report (`thresholds.evaluate`)."""
    results = report["results"]
    failures = sum(1 for r in results if not r["passed"])
    suite = ET.Element(
        "testsuite",
        {
            "name": SUITE_NAME,
            "tests": str(len(results)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "time": "0",
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "source", "value": str(report["source"])})
    ET.SubElement(properties, "property", {"name": "scope", "value": str(report["scope"])})
    for result in results:
        classname = SUITE_NAME if result["page"] is None else f"{SUITE_NAME}.page"
        name = (
            result["expression"]
            if result["page"] is None
            else f"{result['page']}: {result['expression']}"
        )
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": "0"})
        if not result["passed"]:
            failure = ET.SubElement(
                case, "failure", {"message": result["message"], "type": "threshold"}
            )
            failure.text = result["message"]
        else:
            out = ET.SubElement(case, "system-out")
            out.text = result["message"]
    return suite


def write_junit(directory: str | os.PathLike[str], report: dict[str, Any]) -> str:
    """Write ``junit.xml`` into `directory`; returns its path."""
    path = os.path.join(os.fspath(directory), JUNIT_NAME)
    tree = ET.ElementTree(junit_tree(report))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
