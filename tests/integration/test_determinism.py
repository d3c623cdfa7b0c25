"""The determinism promise: same inputs, same outputs and logical timestamps, bit for bit.

Runs the ltd1-lite example (two real ONNX models, a stateful Python filter, a
worker-placed task) under different worker counts and clocks, and replays a
run whose overruns were real.
"""

from __future__ import annotations

import pytest

from flightai import load_mission
from flightai.runtime import build_executive
from flightai.sched.clock import FastClock, WallClock
from flightai.sched.executive import Overrun, OverrunKind
from flightai.sched.io import DigestSink, MemorySink
from flightai.timebase import NS_PER_MS
from tests.conftest import EXAMPLE, base_mission, target

DURATION_NS = 2_000 * NS_PER_MS


def _digest(clock: object, workers: int, duration_ns: int = DURATION_NS,
            injected: tuple[Overrun, ...] = ()) -> tuple[str, int]:
    config = load_mission(EXAMPLE / "mission.toml")
    sink = DigestSink()
    executive = build_executive(config, clock=clock, sinks=[sink], workers=workers,  # type: ignore[arg-type]
                                injected_overruns=injected)
    executive.run(duration_ns)
    return sink.hexdigest(), sink.count


def test_worker_count_does_not_change_outputs() -> None:
    one = _digest(FastClock(), workers=1)
    four = _digest(FastClock(), workers=4)
    assert one == four
    assert one[1] > 250


def test_wall_and_fast_clocks_give_identical_outputs() -> None:
    fast = _digest(FastClock(), workers=2, duration_ns=1_000 * NS_PER_MS)
    wall = _digest(WallClock(spin_ns=200_000), workers=2, duration_ns=1_000 * NS_PER_MS)
    assert wall == fast


def test_repeated_runs_are_identical() -> None:
    assert _digest(FastClock(), workers=2) == _digest(FastClock(), workers=2)


def test_injected_overrun_changes_outputs_and_replays_identically() -> None:
    forced = (Overrun("guidance", 410 * NS_PER_MS, OverrunKind.LATE),
              Overrun("camera_monitor", 500 * NS_PER_MS, OverrunKind.NOT_STARTED))
    clean = _digest(FastClock(), workers=2)
    faulted_1 = _digest(FastClock(), workers=1, injected=forced)
    faulted_4 = _digest(FastClock(), workers=4, injected=forced)
    assert faulted_1 == faulted_4
    assert faulted_1 != clean


@pytest.mark.parametrize("policy", ["hold", "skip", "fallback"])
def test_real_overruns_on_the_wall_clock_replay_identically(make_mission, policy: str) -> None:
    """A worker task really sleeps past its deadline; fast replay of the record matches."""
    data = base_mission()
    data["tasks"] = [
        {"name": "t", "factory": target("Faulty"), "period_ms": 30, "deadline_ms": 20,
         "placement": "worker", "params": {"sleep_at": [3, 4, 9], "sleep_ms": 45},
         "inputs": {"x": "x"}, "outputs": {"y": "y"}, "on_overrun": policy,
         **({"fallback": "classic"} if policy == "fallback" else {})},
    ]
    if policy == "fallback":
        data["tasks"].append({"name": "classic", "function": target("negate"),
                              "fallback_only": True, "inputs": {"x": "x"},
                              "outputs": {"y": "y"}})
    config = make_mission(data)
    live_sink, live_memory = DigestSink(), MemorySink()
    live = build_executive(config, clock=WallClock(spin_ns=200_000),
                           sinks=[live_sink, live_memory])
    live.run(600 * NS_PER_MS)
    assert live.overruns, "the sleeping jobs must overrun on the wall clock"
    assert {o.kind for o in live.overruns} <= {OverrunKind.LATE, OverrunKind.NOT_STARTED}

    replay_sink = DigestSink()
    replay = build_executive(make_mission(data), clock=FastClock(), sinks=[replay_sink],
                             workers=4, injected_overruns=live.overruns)
    replay.run(600 * NS_PER_MS)
    assert replay.overruns == live.overruns
    assert (replay_sink.hexdigest(), replay_sink.count) == (live_sink.hexdigest(),
                                                            live_sink.count)
    statuses = {p.status for p in live_memory.publications}
    expected = {"hold": "held", "fallback": "fallback"}.get(policy)
    if expected:
        assert expected in statuses
    else:
        assert live.health.tasks["t"].skipped >= 1


