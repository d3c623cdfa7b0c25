"""The LTD-1 verdicts on real demo recordings, and the HTML and JUnit reports of them."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flightai.bus.wire import Message, encode
from hil import cli, demo
from hil.record.reader import Recording
from hil.verdict import CheckResult, evaluate, load_verdicts
from tests.report.conftest import ROOT, rewrite

pytestmark = pytest.mark.slow

LTD1 = ROOT / "models" / "ltd1" / "verdicts.toml"
S = 1_000_000_000
MUTATED = {"touchdown_vertical_speed", "outputs_finite", "thrust_within_limits",
           "no_missed_hard_deadline", "safe_only_on_triggers"}


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check.name: r for r in results}


def test_the_ltd1_verdicts_pass_on_a_nominal_demo_recording(demo_recording: Recording) -> None:
    results = evaluate(load_verdicts(LTD1), demo_recording)
    assert len(results) == 14
    assert [r.reason for r in results if not r.passed] == []
    reasons = by_name(results)
    assert re.fullmatch(r"at touchdown \(t = 8\d\.\d{3} s\): truth.touchdown vertical_speed_mps "
                        r"= 1\.\d+ \(<= 2\)", reasons["touchdown_vertical_speed"].reason)
    assert "health.tasks.trn.overruns" not in reasons["no_missed_hard_deadline"].reason  # may skip


def test_the_ground_truth_channels_hold_the_flight_record(
        demo_flight: Path, demo_recording: Recording) -> None:
    outcome = json.loads((demo_flight.parent / "outcome.json").read_text())
    (touchdown,) = list(demo_recording.iter_decoded("truth.touchdown"))
    assert touchdown.t_ns == outcome["t_touchdown_ns"]
    values = {name: float(a.reshape(-1)[0]) for name, a in touchdown.arrays if a.size == 1}
    for name in ("vertical_speed_mps", "horizontal_speed_mps", "landing_error_m",
                 "propellant_kg", "nav_error_m", "touchdown", "early_contact"):
        assert values[name] == outcome[name], name
    ticks = [m.t_ns for m in demo_recording.iter_decoded("tick")]
    states = [m for m in demo_recording.messages if m.topic == "truth.state"]
    assert {m.direction for m in states} == {"ground_truth"}
    assert [m.decode().t_ns for m in states] == ticks


def _mutate(message: Message, direction: str) -> list[list[Any]] | None:
    """Five faults a verdict must catch, each in one place of the recording."""
    fields, arrays = message.fields, list(message.arrays)
    if message.topic == "truth.touchdown":
        arrays = [(n, np.array([3.1]) if n == "vertical_speed_mps" else a) for n, a in arrays]
        return [encode(message.topic, message.seq, message.t_ns, arrays, fields)]
    if message.topic == "out.command" and message.t_ns == 40_010_000_000:
        thrust = arrays[0][1].copy()
        thrust[1] = np.nan
        return [encode(message.topic, message.seq, message.t_ns, [("thrust.cmd", thrust),
                                                                   *arrays[1:]], fields)]
    if message.topic == "health" and message.t_ns >= 50 * S:
        health = dict(fields["health"])
        tasks = {k: dict(v) for k, v in health["tasks"].items()}
        tasks["trn"]["overruns"] = 3  # may skip: not a hard deadline
        if message.t_ns >= 55 * S:
            tasks["guidance"]["overruns"] = 1
        health["tasks"] = tasks
        out = []
        if message.t_ns >= 60 * S:
            health["mode"] = "SAFE"
        if message.t_ns == 60 * S:
            out.append(encode("event", 0, message.t_ns, fields={
                "severity": "WARNING", "kind": "guard_trip", "task": "guidance",
                "detail": "guidance.accel_cmd: above max 20"}))
            out.append(encode("event", 1, message.t_ns, fields={
                "severity": "ERROR", "kind": "safe_entered", "task": "",
                "detail": "guard trip on guidance"}))
        return [*out, encode(message.topic, message.seq, message.t_ns, fields={"health": health})]
    return None


@pytest.fixture(scope="module")
def mutated(demo_flight: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo recording without camera images, with :func:`_mutate`'s faults."""
    path = tmp_path_factory.mktemp("mutated") / "mutated.mcap"
    rewrite(demo_flight, path, _mutate, drop=lambda topic: topic == "camera.image")
    return path


def test_a_mutated_recording_fails_exactly_the_checks_it_breaks_with_their_reasons(
        mutated: Path) -> None:
    results = by_name(evaluate(load_verdicts(LTD1), Recording(mutated)))
    assert {name for name, r in results.items() if not r.passed} == MUTATED
    assert re.fullmatch(r"at touchdown \(t = 8\d\.\d{3} s\): truth.touchdown vertical_speed_mps "
                        r"= 3\.1: 3\.1 > max 2 \(must be <= 2\)",
                        results["touchdown_vertical_speed"].reason)
    assert results["outputs_finite"].reason == (
        "t = 40.010 s: out.command thrust.cmd[1] = np.float32(nan): not finite; "
        "1 non-finite of 1499298 values")
    assert results["thrust_within_limits"].reason.startswith(
        "t = 40.010 s: out.command norm(thrust.cmd) = nan: NaN (must always be >= 999.9 and "
        "<= 5000.1 from 0.000 s to 84.200 s); 1 of 4210 samples violate it")
    assert results["no_missed_hard_deadline"].reason == (
        "health health.tasks.guidance.overruns rose by 1 from 0.000 s to 84.200 s (max 0): "
        "first increase at t = 55.000 s: 0 -> 1")
    assert results["safe_only_on_triggers"].reason == (
        "t = 60.000 s: SAFE entered ('guard trip on guidance'): cause guard_trip is not an "
        "allowed trigger (overrun, tick_timeout)")


class _Html(HTMLParser):
    """Collects the tags, image sources and links of a page; fails on unbalanced tags."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(str(attr["src"]))
        if "id" in attr:
            self.ids.append(str(attr["id"]))
        if "href" in attr:
            self.links.append(str(attr["href"]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
        self.stack.pop()


def test_report_command_writes_html_with_its_figures_and_junit_xml(
        mutated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html, junit = tmp_path / "report.html", tmp_path / "report.xml"
    assert cli.main(["report", str(mutated), "--html", str(html), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  touchdown_vertical_speed: at touchdown" in out
    assert "FAIL, 5 of 14 checks failed" in out

    page = _Html()
    text = html.read_text()
    page.feed(text)
    page.close()
    assert page.stack == [] and page.tags[0] == "html"
    assert {"verdicts", "trajectory", "altitude-velocity", "thrust", "task-timing", "counters",
            "events", "metadata"} <= set(page.ids)
    assert len(page.images) == 5  # every figure drawn: truth, nav, thrust and health are there
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(link.startswith("#") for link in page.links)  # nothing from the network
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert text.count('<td class="fail">FAIL</td>') == 5
    assert text.count('<td class="pass">PASS</td>') == 9
    assert "guard trip on guidance" in text  # the events table
    assert "821c1f34b4ff42813911129afc156092b975a4e8ba69d4ac4252fa5500f43fba" in text  # G-Net
    assert "cpu_flags_sha256" in text and "ltd1-l2" in text  # fingerprint, mission

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "14" and root.get("failures") == "5"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in load_verdicts(LTD1).checks]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == MUTATED
    results = by_name(evaluate(load_verdicts(LTD1), Recording(mutated)))
    for name, failure in failed.items():
        assert failure is not None and failure.get("message") == results[name].reason


def test_report_of_the_nominal_recording_exits_0(
        demo_flight: Path, tmp_path: Path) -> None:
    junit = tmp_path / "ok.xml"
    assert cli.main(["report", str(demo_flight), "--junit", str(junit)]) == 0
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and root.get("tests") == "14"
    assert not list(root.iter("failure")) and len(list(root.iter("testcase"))) == 14


def test_a_degraded_run_fails_the_error_events_check(tmp_path: Path) -> None:
    """A real flight with G-Net's guard tightened to 2 m/s^2 (``--set guards.0.max=2.0``).

    G-Net's commands trip it, guidance latches to ZEM/ZEV, whose commands trip it
    too: guard trips of a fallback are ERROR events. The descent itself still lands.
    """
    path = tmp_path / "degraded.mcap"
    status = demo.main(["--config", "l2", "--nominal", "--record", str(path), "--out",
                        str(tmp_path), "--set", "guards.0.max=2.0"])
    assert status == 0  # the LTD-1 criteria of the flight record are met
    results = by_name(evaluate(load_verdicts(LTD1), Recording(path)))
    assert [n for n, r in results.items() if not r.passed] == ["no_error_events"]
    assert re.match(r"\d+ ERROR \(except safe_entered\) events from 0\.000 s to 8\d\.\d{3} s "
                    r"\(max 0\): t = \d+\.\d{3} s ERROR guard_trip task 'guidance_zemzev': "
                    r"'guidance\.accel_cmd: above max 2 ", results["no_error_events"].reason)


def test_bad_inputs_exit_2_with_a_named_error(tmp_path: Path, demo_flight: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[checks]]\nname = "x"\nkind = "finite"\ntopik = "out."\n')
    assert cli.main(["report", str(demo_flight), "--verdicts", str(bad)]) == 2
    assert "checks[0].topik: expected one of" in capsys.readouterr().err
    torn = tmp_path / "torn.mcap"
    torn.write_bytes(demo_flight.read_bytes()[:100_000])
    assert cli.main(["report", str(torn)]) == 2
    assert f"error: {torn}" in capsys.readouterr().err
    nowhere = tmp_path / "missing" / "report.html"
    assert cli.main(["report", str(demo_flight), "--html", str(nowhere)]) == 2
    err = capsys.readouterr().err
    assert "flightai hil report: error: " in err and str(nowhere) in err
