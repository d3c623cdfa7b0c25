"""Each predicate kind over small real recordings: it passes when it holds, fails with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flightai.bus.wire import encode
from hil.record.reader import Recording
from hil.record.recorder import TO_RUNTIME
from hil.verdict import CheckResult, evaluate, parse_verdicts
from tests.report.conftest import L2, MS, event, health, output, write

S = 1000 * MS


def judge(recording: Recording, check: dict[str, Any],
          instants: dict[str, Any] | None = None) -> CheckResult:
    data: dict[str, Any] = {"checks": [{"name": "c", **check}]}
    if instants:
        data["instants"] = instants
    (result,) = evaluate(parse_verdicts(data), recording)
    return result


@pytest.fixture
def thrust(tmp_path: Path) -> Recording:
    """out.command thrust.cmd every 20 ms for 1 s; |T| 2000 N, one 6000 N spike at 0.5 s."""
    messages = []
    for i in range(50):
        t_ns = (i + 1) * 20 * MS
        value = [0.0, 0.0, 6000.0 if t_ns == 500 * MS else 2000.0]
        messages.append(output("out.command", t_ns, "thrust.cmd", value, seq=i))
    messages.append(output("out.touchdown", 900 * MS, "flag", [1], seq=0))
    return write(tmp_path / "thrust.mcap", messages)


def test_always_fails_at_the_first_violation_naming_time_topic_element_and_value(
        thrust: Recording) -> None:
    check = {"kind": "always", "topic": "out.command", "array": "thrust.cmd", "element": [2],
             "max": 5000.0}
    result = judge(thrust, check)
    assert not result.passed
    assert result.reason.startswith("t = 0.500 s: out.command thrust.cmd[2] = 6000: "
                                    "6000 > max 5000")
    assert "1 of 50 samples" in result.reason
    # the same bound before the spike holds
    assert judge(thrust, {**check, "to": 0.48}).passed


def test_a_reduced_selection_and_a_window_relative_to_an_instant(thrust: Recording) -> None:
    instants = {"touched": {"topic": "out.touchdown", "array": "flag", "equals": 1}}
    check = {"kind": "always", "topic": "out.command", "array": "thrust.cmd",
             "elements": [[0], [2]], "reduce": "norm", "min": 1999.0, "max": 2001.0,
             "from": "touched-0.3"}
    result = judge(thrust, check, instants)
    assert result.passed, result.reason
    assert "from 0.600 s to 1.000 s" in result.reason
    failed = judge(thrust, {**check, "from": "touched-0.5"}, instants)
    assert not failed.passed and "t = 0.500 s" in failed.reason and "norm(thrust.cmd[0], " \
        "thrust.cmd[2]) = 6000" in failed.reason


def test_eventually_passes_at_the_first_sample_that_meets_it_and_fails_with_the_range(
        thrust: Recording) -> None:
    check = {"kind": "eventually", "topic": "out.command", "array": "thrust.cmd",
             "element": [2], "min": 5500.0}
    result = judge(thrust, check)
    assert result.passed and result.reason.startswith("t = 0.500 s:")
    late = judge(thrust, {**check, "from": 0.6})
    assert not late.passed
    assert "never >= 5500 from 0.600 s to 1.000 s" in late.reason
    assert "range [2000, 2000]" in late.reason


def test_at_an_instant_reads_the_latest_sample_and_fails_when_it_never_happens(
        thrust: Recording) -> None:
    instants = {"touched": {"topic": "out.touchdown", "array": "flag", "equals": 1},
                "never": {"topic": "out.touchdown", "array": "flag", "equals": 2}}
    check = {"kind": "at", "at": "touched", "topic": "out.command", "array": "thrust.cmd",
             "element": [2], "max": 2500.0}
    assert judge(thrust, check, instants).passed
    spike = judge(thrust, {**check, "at": "touched-0.4"}, instants)
    assert not spike.passed
    assert spike.reason == ("at touched-0.4 s (t = 0.500 s): out.command thrust.cmd[2] = 6000: "
                            "6000 > max 2500 (must be <= 2500)")
    never = judge(thrust, {**check, "at": "never"}, instants)
    assert not never.passed and never.reason == "instant 'never' never happened"


def test_a_missing_array_or_stream_fails_instead_of_passing(thrust: Recording) -> None:
    missing = judge(thrust, {"kind": "always", "topic": "out.command", "array": "thrust.cnd",
                             "max": 1.0})
    assert not missing.passed and "no array 'thrust.cnd'" in missing.reason
    empty = judge(thrust, {"kind": "always", "topic": "out.nothing", "array": "x", "max": 1.0})
    assert not empty.passed and empty.reason.startswith("no samples of out.nothing x")
    whole = judge(thrust, {"kind": "always", "topic": "out.command", "array": "thrust.cmd",
                           "max": 1.0})
    assert not whole.passed and "3 elements: give an element or a reduce" in whole.reason


def test_finite_names_the_first_non_finite_element(tmp_path: Path) -> None:
    recording = write(tmp_path / "nan.mcap", [
        output("out.nav", 20 * MS, "nav.state", [[1.0, 2.0, 3.0]]),
        output("out.nav", 40 * MS, "nav.state", [[1.0, float("nan"), 3.0]], seq=1),
        output("out.cmd", 60 * MS, "thrust.cmd", [float("inf"), 0.0, 0.0]),
        output("out.flag", 60 * MS, "flag", [1])])
    result = judge(recording, {"kind": "finite"})
    assert not result.passed
    assert result.reason == ("t = 0.040 s: out.nav nav.state[0, 1] = np.float64(nan): not "
                             "finite; 2 non-finite of 9 values")
    assert judge(recording, {"kind": "finite", "to": 0.03}).passed
    assert not judge(recording, {"kind": "finite", "topic": "out.none"}).passed


def test_counter_per_key_with_resets_include_and_sum(tmp_path: Path) -> None:
    recording = write(tmp_path / "counters.mcap", [
        health(0), health(100 * MS, overruns=2, rejects={"stale": 1}),
        health(200 * MS, overruns=0, rejects={"stale": 3, "out_of_order": 2}),  # a reset
        health(300 * MS, overruns=1, rejects={"stale": 3, "out_of_order": 2})])
    overruns = {"kind": "counter", "field": "health.tasks.*.overruns", "max": 2}
    result = judge(recording, overruns)
    assert not result.passed
    assert result.reason == ("health health.tasks.nav.overruns rose by 3 from 0.000 s to "
                             "0.300 s (max 2): first increase at t = 0.100 s: 0 -> 2")
    assert judge(recording, {**overruns, "exclude": ["nav"]}).passed
    assert judge(recording, {**overruns, "include": ["trn"], "max": 0}).passed
    assert judge(recording, {**overruns, "from": 0.25, "max": 1}).passed  # 0 -> 1 after 0.25 s
    rejects = {"kind": "counter", "field": "health.rejects.*", "max": 3}
    assert judge(recording, rejects).passed
    summed = judge(recording, {**rejects, "sum": True})
    assert not summed.passed
    assert "health.rejects.* summed: 5" in summed.reason and "out_of_order: 2" in summed.reason
    typo = judge(recording, {"kind": "counter", "field": "health.frame_slipz"})
    assert not typo.passed and "no field health.frame_slipz" in typo.reason


def test_counter_of_hard_tasks_reads_the_recorded_mission(tmp_path: Path) -> None:
    # trn may skip in L2 (on_overrun = "skip"): its overruns are not missed hard deadlines
    def run(task: str) -> CheckResult:
        hp = health(100 * MS)
        from flightai.bus.wire import decode
        fields = decode(hp, max_message_bytes=1 << 20).fields["health"]
        fields["tasks"][task]["overruns"] = 1
        frames = _health_with(100 * MS, fields)
        recording = write(tmp_path / f"{task}.mcap", [health(0), frames], mission=L2)
        return judge(recording, {"kind": "counter", "field": "health.tasks.*.overruns",
                                 "include": "hard_tasks"})
    assert run("trn").passed
    nav = run("nav")
    assert not nav.passed and "health.tasks.nav.overruns rose by 1" in nav.reason
    bare = write(tmp_path / "bare.mcap", [health(0)])
    unknown = judge(bare, {"kind": "counter", "field": "health.tasks.*.overruns",
                           "include": "hard_tasks"})
    assert not unknown.passed and "the recorded mission config is needed" in unknown.reason


def _health_with(t_ns: int, fields: dict[str, Any]) -> list[Any]:
    from flightai.bus.wire import encode
    return encode("health", 1, t_ns, fields={"health": fields})


def _safe_run(tmp_path: Path, name: str, *messages: list[Any]) -> Recording:
    return write(tmp_path / f"{name}.mcap",
                 [health(0), *messages, health(200 * MS, mode="SAFE")], mission=L2)


def test_safe_entry_on_a_configured_trigger_passes(tmp_path: Path) -> None:
    # L2: [safe] after_consecutive_overruns = 5, on_tick_timeout defaults to true
    recording = _safe_run(tmp_path, "ok", event(50 * MS, "overrun", task="nav"),
                          event(150 * MS, "safe_entered", "5 consecutive overruns of nav",
                                "ERROR", seq=1))
    result = judge(recording, {"kind": "safe_entry", "triggers": ["configured"]})
    assert result.passed, result.reason
    assert "t = 0.150 s: SAFE entered on an allowed trigger" in result.reason


def test_safe_entry_fails_on_a_trigger_not_configured_or_without_its_event(
        tmp_path: Path) -> None:
    guard = _safe_run(tmp_path, "guard", event(150 * MS, "guard_trip", task="guidance"),
                      event(150 * MS, "safe_entered", "guard trip on guidance", "ERROR", seq=1))
    result = judge(guard, {"kind": "safe_entry"})
    assert not result.passed
    assert result.reason == ("t = 0.150 s: SAFE entered ('guard trip on guidance'): cause "
                             "guard_trip is not an allowed trigger (overrun, tick_timeout)")
    assert judge(guard, {"kind": "safe_entry", "triggers": ["guard_trip"]}).passed
    lonely = _safe_run(tmp_path, "lonely", event(150 * MS, "safe_entered",
                                                 "external clock tick timeout", "ERROR"))
    result = judge(lonely, {"kind": "safe_entry"})
    assert not result.passed and "with no tick_timeout event in the 5 s before it" in result.reason
    command = _safe_run(tmp_path, "cmd", event(150 * MS, "safe_entered", "by command", "ERROR"))
    assert not judge(command, {"kind": "safe_entry"}).passed
    assert judge(command, {"kind": "safe_entry", "triggers": ["configured", "command"]}).passed


def test_safe_entry_fails_on_a_health_mode_change_with_no_event(tmp_path: Path) -> None:
    silent = _safe_run(tmp_path, "silent")
    result = judge(silent, {"kind": "safe_entry", "triggers": ["command"]})
    assert not result.passed
    assert result.reason.startswith("t = 0.200 s: health mode SAFE (was NOMINAL) with no "
                                    "safe_entered event")


def test_safe_entry_judges_only_entries_in_its_window(tmp_path: Path) -> None:
    # entered SAFE at 0.15 s by command, still SAFE at 0.2 and 0.3 s
    recording = write(tmp_path / "window.mcap", [
        health(0), event(150 * MS, "safe_entered", "by command", "ERROR"),
        health(200 * MS, mode="SAFE"), health(300 * MS, mode="SAFE")], mission=L2)
    assert not judge(recording, {"kind": "safe_entry"}).passed
    later = judge(recording, {"kind": "safe_entry", "from": 0.25})
    assert later.passed, later.reason
    assert later.reason == "SAFE never entered from 0.250 s to 0.300 s (1 health messages)"


def test_never_safe_is_an_always_check_on_the_health_mode(tmp_path: Path) -> None:
    silent = _safe_run(tmp_path, "mode")
    check = {"kind": "always", "topic": "health", "field": "health.mode",
             "not_equals": "SAFE"}
    result = judge(silent, check)
    assert not result.passed
    assert result.reason.startswith("t = 0.200 s: health health.mode = 'SAFE': 'SAFE' is "
                                    "'SAFE'")
    assert judge(silent, {**check, "to": 0.1}).passed


def test_events_counts_severities_and_kinds_with_exceptions(tmp_path: Path) -> None:
    recording = write(tmp_path / "events.mcap", [
        health(0), event(10 * MS, "overrun", "late", task="trn"),
        event(20 * MS, "safe_entered", "by command", "ERROR", seq=1),
        event(30 * MS, "task_error", "ZeroDivisionError", "ERROR", task="nav", seq=2)])
    check = {"kind": "events", "severity": ["ERROR"], "except": ["safe_entered"]}
    result = judge(recording, check)
    assert not result.passed
    assert result.reason == ("1 ERROR (except safe_entered) events from 0.000 s to 0.030 s "
                             "(max 0): t = 0.030 s ERROR task_error task 'nav': "
                             "'ZeroDivisionError'")
    assert judge(recording, {**check, "max": 1}).passed
    assert judge(recording, {**check, "to": 0.025}).passed
    assert not judge(recording, {"kind": "events", "kinds": ["overrun"]}).passed


def test_a_message_the_wire_decoder_refuses_fails_the_check_naming_it(tmp_path: Path) -> None:
    good = encode("sensor.alt", 0, 20 * MS, [("alt", np.asarray([1.0]))])
    torn = [*encode("sensor.alt", 1, 40 * MS, [("alt", np.asarray([2.0]))])]
    torn[1] = b"\xc1"  # a header msgpack never writes
    recording = write(tmp_path / "refused.mcap", [(good, TO_RUNTIME), (torn, TO_RUNTIME),
                                                  output("out.flag", 60 * MS, "flag", [1])])
    result = judge(recording, {"kind": "always", "topic": "sensor.alt", "array": "alt",
                               "max": 10.0})
    assert not result.passed and result.reason.startswith("sensor.alt: a recorded message ")
