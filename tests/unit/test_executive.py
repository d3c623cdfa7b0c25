"""LET semantics, fault policies, modes and input validation on the fast clock."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from flightai.errors import ConfigError
from flightai.runtime import build_executive
from flightai.sched.clock import ExternalClock, FastClock
from flightai.sched.executive import Overrun, OverrunKind
from flightai.sched.health import Mode
from flightai.sched.io import ListSource, MemorySink, Sample
from flightai.timebase import NS_PER_MS
from tests.conftest import base_mission, target


def _run(config: Any, duration_ms: int, **kwargs: Any) -> tuple[Any, MemorySink]:
    sink = MemorySink()
    executive = build_executive(config, clock=kwargs.pop("clock", FastClock()), sinks=[sink],
                                **kwargs)
    executive.run(duration_ms * NS_PER_MS)
    return executive, sink


def _faulty_mission(policy: str, **params: Any) -> dict[str, Any]:
    data = base_mission()
    data["tasks"] = [
        {"name": "t", "factory": target("Faulty"), "period_ms": 20, "params": params,
         "inputs": {"x": "x"}, "outputs": {"y": "y"}, "on_guard": policy,
         "on_overrun": policy, **({"fallback": "classic"} if policy == "fallback" else {})},
    ]
    if policy == "fallback":
        data["tasks"].append({"name": "classic", "function": target("negate"),
                              "fallback_only": True, "inputs": {"x": "x"},
                              "outputs": {"y": "y"}})
    data["guards"] = [{"signal": "y", "finite": True, "max": 1e5}]
    return data


def test_outputs_become_visible_at_the_deadline_not_before(make_mission) -> None:
    data = base_mission()
    data["signals"].append({"name": "z", "dtype": "float32", "shape": [1]})
    data["tasks"][0].update(period_ms=40, deadline_ms=30)
    data["tasks"].append({"name": "u", "function": target("add_one"), "period_ms": 10,
                          "inputs": {"x": "y"}, "outputs": {"y": "z"}})
    executive, sink = _run(make_mission(data), 100)
    t_pubs = [(p.t_ns, p.t_release_ns) for p in sink.publications if p.task == "t"]
    assert t_pubs == [(30 * NS_PER_MS, 0), (70 * NS_PER_MS, 40 * NS_PER_MS)]
    # u released at 20 ms still reads y's initial zeros; from 30 ms on it reads x(0)+1 = 1.
    z = {p.t_release_ns // NS_PER_MS: float(p.outputs[0][1][0])
         for p in sink.publications if p.task == "u"}
    assert z[20] == 1.0 and z[30] == 2.0 and z[60] == 2.0 and z[70] == 42.0
    assert executive.health.mode is Mode.NOMINAL


def test_publication_order_follows_the_config_within_an_instant(make_mission) -> None:
    data = base_mission()
    data["signals"].append({"name": "z", "dtype": "float32", "shape": [1]})
    data["tasks"].insert(0, {"name": "first", "function": target("add_one"), "period_ms": 20,
                             "inputs": {"x": "x"}, "outputs": {"y": "z"}})
    _, sink = _run(make_mission(data), 100)
    at_40 = [p.task for p in sink.publications if p.t_ns == 40 * NS_PER_MS]
    assert at_40 == ["first", "t"]


@pytest.mark.parametrize(("policy", "status", "expected"),
                         [("hold", "held", 1.0), ("skip", None, None),
                          ("fallback", "fallback", -20.0)])
def test_guard_trip_applies_the_policy(make_mission, policy, status, expected) -> None:
    executive, sink = _run(make_mission(_faulty_mission(policy, nan_at=[2])), 80)
    pubs = {p.t_release_ns // NS_PER_MS: p for p in sink.publications}
    health = executive.health.tasks["t"]
    assert health.guard_trips == 1
    assert all(np.isfinite(p.outputs[0][1]).all() for p in sink.publications)
    if status is None:
        assert 20 not in pubs and health.skipped == 1
    else:
        assert pubs[20].status == status
        assert float(pubs[20].outputs[0][1][0]) == expected
    if policy == "fallback":
        # latched: the release at 40 ms also runs the classical task
        assert pubs[40].status == "fallback" and health.on_fallback
    else:
        assert pubs[40].status == "ok"
    assert any(e.kind == "guard_trip" for e in sink.events)


def test_range_guard_and_task_exception_and_bad_output_are_faults(make_mission) -> None:
    executive, sink = _run(make_mission(_faulty_mission("hold", big_at=[1], raise_at=[3])), 80)
    health = executive.health.tasks["t"]
    assert health.guard_trips == 1 and health.errors == 1 and health.held == 2
    data = base_mission()
    data["tasks"][0]["function"] = target("wrong_shape")
    executive, sink = _run(make_mission(data), 60)
    assert executive.health.tasks["t"].errors == 2
    assert "signal 'y' is float32[1]" in next(e.detail for e in sink.events
                                               if e.kind == "task_error")


@pytest.mark.parametrize(("function", "detail"), [
    ("not_a_mapping", "outputs are a list, not a mapping of port names to arrays"),
    ("missing_port", "output port 'y' missing")])
def test_outputs_that_are_not_the_declared_ports_are_a_task_error(make_mission, function,
                                                                  detail) -> None:
    data = base_mission()
    data["tasks"][0]["function"] = target(function)
    executive, sink = _run(make_mission(data), 60)
    assert executive.health.tasks["t"].errors == 2
    assert {e.detail for e in sink.events if e.kind == "task_error"} == {detail}
    assert all(p.status == "held" for p in sink.publications)


def test_consecutive_overruns_enter_safe_and_latch_fallbacks(make_mission) -> None:
    data = _faulty_mission("hold")
    data["tasks"][0]["fallback"] = "classic"
    data["tasks"].append({"name": "classic", "function": target("negate"),
                          "fallback_only": True, "inputs": {"x": "x"}, "outputs": {"y": "y"}})
    data["safe"] = {"after_consecutive_overruns": 2}
    forced = [Overrun("t", t * NS_PER_MS, OverrunKind.LATE) for t in (20, 40)]
    executive, sink = _run(make_mission(data), 120, injected_overruns=forced)
    assert executive.health.mode is Mode.SAFE
    assert executive.health.tasks["t"].on_fallback
    statuses = [p.status for p in sink.publications]
    assert statuses[:3] == ["ok", "held", "held"] and statuses[3:] == ["fallback"] * 2
    kinds = [e.kind for e in sink.events]
    assert kinds.index("safe_entered") < kinds.index("fallback_engaged")


def test_leave_safe_and_restore_primary_commands_apply_at_a_frame_boundary(make_mission) -> None:
    data = _faulty_mission("fallback", nan_at=[1])
    data["safe"] = {"on_guard_trip": True}
    config = make_mission(data)
    sink = MemorySink()
    executive = build_executive(config, clock=FastClock(), sinks=[sink])
    executive.run(50 * NS_PER_MS)
    assert executive.health.mode is Mode.SAFE
    executive.request_leave_safe()
    executive.request_restore_primary("t")
    with pytest.raises(KeyError):
        executive.request_restore_primary("nope")
    executive.run(50 * NS_PER_MS)  # a second run restarts mission time at 0
    assert executive.health.mode is Mode.NOMINAL
    assert not executive.health.tasks["t"].on_fallback
    assert [e.kind for e in sink.events][-2:] == ["safe_left", "primary_restored"]


class _Scripted:
    """Delivers given samples at given frames, in the given order."""

    def __init__(self, script: dict[int, list[Sample]]) -> None:
        self._script = script

    def poll(self, t_ns: int) -> list[Sample]:
        return self._script.get(t_ns, [])


def test_bad_inputs_are_counted_by_reason_and_frames_go_on(make_mission) -> None:
    good = np.array([1.0], np.float32)
    script = {
        0: [Sample("x", 0, good),
            Sample("nope", 0, good),                                # unknown topic
            Sample("y", 0, good)],                                  # not an input
        10 * NS_PER_MS: [Sample("x", 10 * NS_PER_MS, np.array([1.0])),  # float64: bad dtype
                         Sample("x", 10 * NS_PER_MS, np.zeros(2, np.float32))],  # bad shape
        30 * NS_PER_MS: [Sample("x", 30 * NS_PER_MS, good),
                         Sample("x", 20 * NS_PER_MS, good)],        # older than the last
    }
    data = base_mission()
    del data["source"]
    executive, _ = _run(make_mission(data), 100, source=_Scripted(script))
    health = executive.health
    assert health.frames == 10
    assert health.inputs_accepted == 2
    assert health.rejects == {"unknown_topic": 1, "not_an_input": 1, "bad_dtype": 1,
                              "bad_shape": 1, "out_of_order": 1}


def test_future_timestamps_are_refused() -> None:
    from flightai.sched.executive import Executive

    class Early:
        def poll(self, t_ns: int) -> list[Sample]:
            return [Sample("x", t_ns + 1, np.array([1.0], np.float32))]

    from pathlib import Path

    from flightai.config import parse_mission

    data = base_mission()
    del data["source"]
    config = parse_mission(data, Path("."))
    from flightai.runtime import load_tasks

    executive = Executive(config, load_tasks(config).tasks, FastClock(), source=Early())
    executive.run(30 * NS_PER_MS)
    assert executive.health.rejects == {"future_timestamp": 3}


def test_external_clock_drives_frames_and_reports_missing_ticks(make_mission) -> None:
    data = base_mission()
    data["runtime"]["external"] = {"tick_timeout_ms": 20}
    config = make_mission(data)
    clock = ExternalClock(20 * NS_PER_MS)
    sink = MemorySink()
    executive = build_executive(config, clock=clock, sinks=[sink])
    runner = threading.Thread(target=executive.run, args=(None,))
    runner.start()
    for t in range(0, 50 * NS_PER_MS, 10 * NS_PER_MS):
        clock.tick(t)
    deadline = threading.Event()
    while executive.health.tick_timeouts == 0 and not deadline.wait(0.01):
        pass
    executive.stop()
    runner.join(5)
    assert not runner.is_alive()
    assert executive.health.frames == 5
    assert executive.health.mode is Mode.SAFE  # safe.on_tick_timeout defaults to true
    assert any(e.kind == "tick_timeout" for e in sink.events)


def test_stale_inputs_are_refused(make_mission) -> None:
    good = np.array([1.0], np.float32)
    script = {30 * NS_PER_MS: [Sample("x", 5 * NS_PER_MS, good),      # 25 ms old: stale
                               Sample("x", 15 * NS_PER_MS, good)]}     # 15 ms old: fine
    data = base_mission()
    del data["source"]
    data["signals"][0]["max_age_ms"] = 20
    executive, _ = _run(make_mission(data), 40, source=_Scripted(script))
    assert executive.health.rejects == {"stale": 1}
    assert executive.health.inputs_accepted == 1


def test_enter_safe_and_reset_counters_commands(make_mission) -> None:
    data = _faulty_mission("fallback")
    sink = MemorySink()
    executive = build_executive(make_mission(data), clock=FastClock(), sinks=[sink])
    executive.request_enter_safe("operator")
    executive.run(60 * NS_PER_MS)
    assert executive.health.mode is Mode.SAFE
    assert executive.health.tasks["t"].on_fallback
    assert [p.status for p in sink.publications] == ["fallback", "fallback"]
    assert next(e for e in sink.events if e.kind == "safe_entered").detail == "operator"
    executive.request_reset_counters()
    executive.run(10 * NS_PER_MS)
    health = executive.health
    assert health.frames == 1 and health.tasks["t"].releases == 1  # was 7 and 3
    assert health.tasks["t"].on_fallback and health.mode is Mode.SAFE


def test_time_tag_ports_give_measurement_and_publication_instants(make_mission) -> None:
    data = base_mission()
    data["source"]["params"] = {"every_ms": 30}
    data["signals"].append({"name": "tags", "dtype": "int64", "shape": [2]})
    data["tasks"].append({"name": "u", "function": target("time_tags"), "period_ms": 10,
                          "inputs": {"x_t": "x@t_ns", "y_t": "y@t_ns"},
                          "outputs": {"tags": "tags"}})
    _, sink = _run(make_mission(data), 100)
    seen = {p.t_release_ns: p.outputs[0][1].tolist() for p in sink.publications if p.task == "u"}
    ms = NS_PER_MS
    # x is measured every 30 ms; y (period 20 ms) is published at 20, 40, ...
    assert seen[0] == [0, 0]
    assert seen[10 * ms] == [0, 0]
    assert seen[20 * ms] == [0, 20 * ms]
    assert seen[30 * ms] == [30 * ms, 20 * ms]
    assert seen[60 * ms] == [60 * ms, 60 * ms]


def test_time_tag_of_an_undeclared_signal_is_refused(make_mission) -> None:
    data = base_mission()
    data["tasks"][0]["inputs"] = {"x": "nope@t_ns"}
    with pytest.raises(ConfigError, match=r"tasks\[0\].inputs.x: expected the name of a declared"):
        make_mission(data)


def test_a_factory_asking_for_mission_dir_gets_the_mission_folder(make_mission,
                                                                  tmp_path) -> None:
    (tmp_path / "table.bin").write_bytes(b"\x07")
    data = base_mission()
    data["tasks"][0] = {"name": "t", "factory": target("DataFile"), "period_ms": 20,
                        "params": {"name": "table.bin"}, "inputs": {}, "outputs": {"y": "y"}}
    executive, _ = _run(make_mission(data), 40)
    assert executive.value("y").tolist() == [7.0]


def test_inputs_reach_tasks_c_ordered_like_the_wire_delivers_them(make_mission) -> None:
    data = base_mission()
    data["signals"][0]["shape"] = [2, 3]
    data["signals"][1]["shape"] = [2, 3]
    data["tasks"][0] = {"name": "t", "function": target("layout"), "period_ms": 10,
                        "inputs": {"x": "x"}, "outputs": {"y": "y"}}
    data.pop("source")
    config = make_mission(data)
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    executive = build_executive(config, clock=FastClock(),
                                source=ListSource([Sample("x", 0, fortran)]))
    executive.run(30 * NS_PER_MS)
    assert executive.value("y").tolist() == [[1.0] * 3] * 2


def test_an_immutable_sample_is_kept_as_is_and_any_other_is_copied_read_only(make_mission) -> None:
    data = base_mission()
    data["tasks"][0] = {"name": "t", "function": target("layout"), "period_ms": 10,
                        "inputs": {"x": "x"}, "outputs": {"y": "y"}}
    data.pop("source")
    config = make_mission(data)
    spec = config.signal("x")
    received = np.frombuffer(np.ones(spec.shape, spec.dtype).tobytes(), spec.dtype)
    mine = np.ones(spec.shape, spec.dtype)
    for value, immutable in ((received, True), (mine, False)):
        executive = build_executive(config, clock=FastClock(), source=ListSource(
            [Sample("x", 0, value.reshape(spec.shape), immutable=immutable)]))
        executive.run(10 * NS_PER_MS)
        kept = executive.value("x")
        assert np.shares_memory(kept, value) is immutable
        assert not kept.flags.writeable
