"""Each fault type in a short in-process LTD-1 flight: detected, answered as configured, no NaN.

The flights run the L2 mission (G-Net under ZEM/ZEV fallback, TRN-CorrNet) for
a few seconds of mission time with one fault from 2 s; a nominal flight of the
same case is the reference. Every flight checks that no publication carried NaN
or infinity (``FaultedFlight.non_finite``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from flightai.sched.health import Health, Mode
from flightai.sched.io import Publication
from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.faults.flight import FaultedFlight, fly_faulted
from hil.faults.plan import parse_plan
from hil.ltd1.dispersions import draw_case

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.slow

L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"
SEED = 1
DURATION_NS = 5 * NS_PER_S


class NavTrace:
    """Keeps each nav.state published, by instant."""

    def __init__(self) -> None:
        self.states: dict[int, np.ndarray] = {}

    def publish(self, publication: Publication) -> None:
        if publication.task == "nav":
            self.states[publication.t_ns] = publication.outputs[0][1][0]

    def event(self, event: object) -> None:
        pass

    def frame_done(self, t_ns: int, health: Health) -> None:
        pass


def _fly(fault: str = "", duration_ns: int = DURATION_NS) -> tuple[FaultedFlight, NavTrace]:
    text = f"seed = 3\n{fault}"
    trace = NavTrace()
    flight = fly_faulted(L2, draw_case(SEED), parse_plan(tomllib.loads(text), text),
                         duration_ns=duration_ns, sinks=[trace])
    assert not flight.non_finite, f"NaN or infinity published: {flight.non_finite}"
    return flight, trace


def _fault(kind: str, target: str, end_ms: int, extra: str = "") -> str:
    return (f'[[faults]]\nname = "{kind}"\nkind = "{kind}"\ntarget = "{target}"\n'
            f"start_ms = 2000\nend_ms = {end_ms}\n{extra}\n")


@pytest.fixture(scope="module")
def nominal() -> tuple[FaultedFlight, NavTrace, NavTrace]:
    """The unfaulted flight (5 s), and the nav trace of a 6 s one."""
    flight, trace = _fly()
    assert not flight.log and not flight.bus_rejects and not flight.health.rejects
    assert flight.health.input_timeouts == 0 and flight.tasks["nav"]["ranges_rejected"] == "0"
    return flight, trace, _fly(duration_ns=6 * NS_PER_S)[1]


def _nav_gap_m(trace: NavTrace, nominal: NavTrace) -> float:
    """How far the faulted nav position ends from the nominal one (m)."""
    last = max(trace.states)
    return float(np.linalg.norm(trace.states[last][:3] - nominal.states[last][:3]))


def test_dropout_raises_input_timeout_and_nav_catches_up_on_the_dv_counter(nominal) -> None:
    flight, trace = _fly(_fault("dropout", "imu.dv", 2300))
    assert len(flight.log) == 30
    assert flight.health.input_timeouts == 1
    (timeout,) = flight.events_of("input_timeout")
    assert timeout.detail.startswith("imu.dv") and timeout.t_ns == 2030 * NS_PER_MS
    assert [e.detail for e in flight.events_of("input_resumed")] == ["imu.dv"]
    # the accumulated-dv message loses nothing: nav ends where the nominal flight's did
    assert _nav_gap_m(trace, nominal[1]) < 0.5


def test_stuck_altimeter_is_gated_out_by_nav_once_it_disagrees(nominal) -> None:
    flight, trace = _fly(_fault("stuck", "altimeter.range", 6000), duration_ns=6 * NS_PER_S)
    rejected = int(flight.tasks["nav"]["ranges_rejected"])
    # the frozen range drifts 30 m/s from the truth: within ~2.5 s it leaves the 6-sigma gate
    assert 10 <= rejected < len(flight.log) == 40
    assert abs(trace.states[max(trace.states)][2] - nominal[2].states[max(trace.states)][2]) < 30


def test_biased_altimeter_is_gated_out_by_nav(nominal) -> None:
    flight, trace = _fly(_fault("bias", "altimeter.range", 3000, "params = { offset = 300.0 }"))
    assert int(flight.tasks["nav"]["ranges_rejected"]) == len(flight.log) == 10
    assert _nav_gap_m(trace, nominal[1]) < 2.0


def test_a_camera_noise_burst_costs_trn_fixes_not_the_estimate(nominal) -> None:
    flight, trace = _fly(_fault("noise", "camera.image", 4000, "params = { sigma = 3.0 }"))
    nav, reference = flight.tasks["nav"], nominal[0].tasks["nav"]
    assert len(flight.log) == 10
    dropped = int(nav["fixes_ignored"]) + int(nav["fixes_rejected"])
    assert dropped >= int(reference["fixes_ignored"]) + int(reference["fixes_rejected"]) + 3
    assert _nav_gap_m(trace, nominal[1]) < 20.0


def test_delayed_samples_are_refused_as_stale(nominal) -> None:
    flight, trace = _fly(_fault("delay", "imu.dv", 2200, "params = { delay_ms = 50 }"))
    assert flight.health.rejects == {"stale": 20} and len(flight.log) == 20
    assert flight.events_of("input_rejected")[0].detail == "imu.dv: stale"
    assert _nav_gap_m(trace, nominal[1]) < 0.5


def test_out_of_order_samples_are_refused(nominal) -> None:
    flight, trace = _fly(_fault("out_of_order", "imu.dv", 2200, "probability = 0.5"))
    rejects = flight.health.rejects
    # held until a newer sample was taken: older than it, or also older than max_age_ms
    assert rejects["out_of_order"] > 0 and sum(rejects.values()) == len(flight.log)
    assert set(rejects) <= {"out_of_order", "stale"}
    assert not flight.bus_rejects  # the wire order is intact: only the times are not
    assert _nav_gap_m(trace, nominal[1]) < 0.5


def test_corrupt_frames_are_refused_by_reason(nominal) -> None:
    flight, trace = _fly(_fault("corrupt", "imu.dv", 3000, "probability = 0.5"))
    assert set(flight.bus_rejects) == {"bad_frame_length", "malformed", "bad_dtype",
                                       "bad_shape", "bad_frame_count"}
    assert sum(flight.bus_rejects.values()) == len(flight.log) > 20
    assert not flight.health.rejects and _nav_gap_m(trace, nominal[1]) < 0.5


def test_transport_drop_duplicate_reorder(nominal) -> None:
    faults = (_fault("drop", "imu.dv", 3000, "probability = 0.3")
              + _fault("duplicate", "altimeter.range", 3000)
              + _fault("reorder", "imu.dv", 3000, "probability = 0.3").replace(
                  'start_ms = 2000', 'start_ms = 3500').replace("end_ms = 3000", "end_ms = 4500"))
    flight, trace = _fly(faults)
    counts = {kind: sum(a.kind == kind for a in flight.log)
              for kind in ("drop", "duplicate", "reorder")}
    assert counts["duplicate"] == 10 and counts["drop"] > 10 and counts["reorder"] > 10
    assert flight.bus_rejects == {"duplicate": 10, "out_of_order": counts["reorder"]}
    # a reordered message is a gap when the next one overtakes it, then refused when it arrives
    assert flight.sequence_gaps == counts["drop"] + counts["reorder"]
    assert _nav_gap_m(trace, nominal[1]) < 0.5


def test_nan_from_gnet_trips_the_guard_and_falls_back_to_zemzev(nominal) -> None:
    flight, _ = _fly(_fault("nan", "guidance", 2100))
    guidance = flight.health.tasks["guidance"]
    assert [a.t_ns for a in flight.log] == [t * NS_PER_MS for t in range(2010, 2100, 20)]
    assert guidance.guard_trips == 1 and guidance.on_fallback
    assert flight.events_of("guard_trip")[0].detail == "guidance.accel_cmd: non-finite value"
    assert flight.record.fallback == ("guidance",)


def test_nan_from_nav_trips_its_guard_and_nav_holds(nominal) -> None:
    flight, trace = _fly(_fault("nan", "nav", 2200))
    nav = flight.health.tasks["nav"]
    assert nav.guard_trips == nav.held == len(flight.log) == 10
    held = [trace.states[t * NS_PER_MS] for t in range(2010, 2210, 20)]
    assert all((state == held[0]).all() for state in held)  # the last good state, repeated
    assert _nav_gap_m(trace, nominal[1]) < 0.5


def test_forced_overruns_fall_back_then_enter_safe(nominal) -> None:
    flight, _ = _fly(_fault("overrun", "guidance", 2100))
    guidance = flight.health.tasks["guidance"]
    assert guidance.overruns == len(flight.log) == 5 and guidance.on_fallback
    assert flight.health.mode is Mode.SAFE
    assert flight.events_of("safe_entered")[0].detail == "5 consecutive overruns of guidance"
