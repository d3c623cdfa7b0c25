"""JUnit XML of a verdict: one test case per check, a failure's message is its reason.

The layout is the one CI parsers read (Jenkins, GitLab, GitHub actions'
test reporters): ``testsuites`` > ``testsuite`` > ``testcase`` with a
``failure`` child when the check failed, ``system-out`` with the reason when it
passed.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from hil.verdict.checks import CheckResult

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters XML 1.0 cannot hold (an event's free-text detail might carry them)."""


def junit_xml(results: Sequence[CheckResult], suite: str, recording: str) -> bytes:
    """The JUnit XML document (UTF-8 bytes) of one verdict over one recording.

    Args:
        results: the checks' outcomes.
        suite: the test suite's name (the verdict file's title).
        recording: the recording judged (a property of the suite).
    """
    failures = sum(not r.passed for r in results)
    wall_s = sum(r.wall_s for r in results)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0",
              "skipped": "0", "time": f"{wall_s:.3f}"}
    root = ET.Element("testsuites", {"name": "flightai hil report", **counts})
    node = ET.SubElement(root, "testsuite", {
        "name": suite, **counts, "hostname": socket.gethostname(),
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")})
    properties = ET.SubElement(node, "properties")
    ET.SubElement(properties, "property", {"name": "recording", "value": recording})
    classname = "verdicts." + "".join(c if c.isalnum() else "_" for c in suite)
    for result in results:
        case = ET.SubElement(node, "testcase", {"classname": classname,
                                                "name": result.check.name,
                                                "time": f"{result.wall_s:.3f}"})
        if result.passed:
            ET.SubElement(case, "system-out").text = _clean(result.reason)
        else:
            failure = ET.SubElement(case, "failure", {"message": _clean(result.reason),
                                                      "type": result.check.kind})
            failure.text = _clean(f"{result.check.doc}\n{result.reason}".strip())
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def write_junit(path: str | Path, results: Sequence[CheckResult], suite: str,
                recording: str) -> None:
    """Write :func:`junit_xml` to ``path``."""
    Path(path).write_bytes(junit_xml(results, suite, recording))
