from __future__ import annotations

import numpy as np
import pytest

from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.ltd1.constants import GRAVITY_MPS2, LOW_GATE_R_M, LOW_GATE_V_MPS
from hil.ltd1.dispersions import draw_case
from hil.ltd1.sim import SIGNALS, Sample, Simulator, Truth
from hil.ltd1.terrain import Terrain

STEP_NS = 20 * NS_PER_MS
Command = tuple[int, np.ndarray]
G = np.array(GRAVITY_MPS2)


def truth_guidance(truth: Truth) -> np.ndarray:
    """Thrust (N) from truth: ZEM/ZEV to the low gate on a countdown, then the phase-B PD law."""
    r, v = truth.r_m, truth.v_mps
    t_go_s = 75.0 - truth.t_ns / NS_PER_S
    if r[2] > LOW_GATE_R_M[2] + 0.5 and t_go_s > 2.0:
        zem = np.array(LOW_GATE_R_M) - (r + v * t_go_s + 0.5 * G * t_go_s**2)
        zev = np.array(LOW_GATE_V_MPS) - (v + G * t_go_s)
        accel = 6.0 * zem / t_go_s**2 - 2.0 * zev / t_go_s
    else:
        accel = np.array([-0.6 * v[0] - 0.1 * r[0], -0.6 * v[1] - 0.1 * r[1],
                          -0.8 * (v[2] + 1.5)]) - G
    return accel * truth.mass_kg


def fly(sim: Simulator, until_ns: int | None = None) -> tuple[list[Sample], list[Command]]:
    """Fly on truth guidance every 20 ms; the samples read and the commands sent."""
    samples: list[Sample] = []
    commands: list[Command] = []
    t_ns = 0
    while not sim.done and (until_ns is None or t_ns < until_ns):
        samples += sim.sensor_samples_until(t_ns)
        commands.append((t_ns, truth_guidance(sim.truth())))
        sim.apply_thrust(*commands[-1])
        t_ns += STEP_NS
        sim.advance_to(t_ns)
    return samples, commands


def test_nominal_descent_touches_down_on_target(small_terrain: Terrain) -> None:
    sim = Simulator(draw_case(1, nominal=True), terrain=small_terrain)
    samples, _ = fly(sim)
    outcome = sim.outcome()
    assert outcome.touchdown
    assert not outcome.early_contact
    assert not outcome.flameout
    assert outcome.vertical_speed_mps == pytest.approx(1.5, abs=0.1)
    assert outcome.horizontal_speed_mps < 0.2
    assert outcome.landing_error_m < 1.0
    assert 50.0 < outcome.propellant_kg < 100.0
    assert 70 * NS_PER_S < outcome.t_ns < 110 * NS_PER_S
    counts = {name: sum(1 for s in samples if s[0] == name) for name in SIGNALS}
    seconds = outcome.t_ns / NS_PER_S
    assert counts["nav.handover"] == 1
    assert counts["imu.dv"] == pytest.approx(100 * seconds, abs=3)
    assert counts["touchdown"] == counts["imu.dv"]
    assert counts["altimeter.range"] == pytest.approx(10 * seconds, abs=2)
    assert counts["camera.image"] == pytest.approx(5 * seconds, abs=2)
    assert [v[0] for name, _, v in samples if name == "touchdown"][-1] == 1
    # The accelerometer's Δv (less its gravity-free integral) ends near the truth's change.
    dv = [v for name, _, v in samples if name == "imu.dv"][-1]
    assert dv[2] > 0.0


def test_samples_have_the_documented_types_and_order(small_terrain: Terrain) -> None:
    case = draw_case(2)
    sim = Simulator(case, terrain=small_terrain)
    samples = sim.sensor_samples_until(200 * NS_PER_MS)
    assert samples[0][:2] == ("nav.handover", 0)
    np.testing.assert_array_equal(samples[0][2], case.handover_r_m + case.handover_v_mps)
    expected = {"nav.handover": ("float64", (6,)), "imu.dv": ("float64", (3,)),
                "altimeter.range": ("float32", (1,)), "camera.image": ("float32", (256, 256)),
                "touchdown": ("uint8", (1,))}
    for name, _, value in samples:
        assert (value.dtype.name, value.shape) == expected[name]
    keys = [(t_ns, SIGNALS.index(name)) for name, t_ns, _ in samples]
    assert keys == sorted(keys)
    assert [name for name, t_ns, _ in samples if t_ns == 0] == list(SIGNALS)
    assert [name for name, t_ns, _ in samples if t_ns == 10 * NS_PER_MS] == ["imu.dv", "touchdown"]
    assert [name for name, t_ns, _ in samples if t_ns == 100 * NS_PER_MS] == [
        "imu.dv", "altimeter.range", "touchdown"]
    assert max(t_ns for _, t_ns, _ in samples) == 200 * NS_PER_MS
    assert sim.sensor_samples_until(200 * NS_PER_MS) == []


def test_same_case_same_samples_however_time_is_chunked(small_terrain: Terrain) -> None:
    case = draw_case(4)
    first, commands = fly(Simulator(case, terrain=small_terrain), until_ns=3 * NS_PER_S)
    # The same commands, but time advanced in odd pieces and samples fetched late.
    sim = Simulator(case, terrain=small_terrain)
    second: list[Sample] = []
    for t_ns, thrust_n in commands:
        sim.advance_to(t_ns + 7 * NS_PER_MS + 3)
        second += sim.sensor_samples_until(t_ns)
        sim.apply_thrust(t_ns, thrust_n)
    assert [(n, t) for n, t, _ in first] == [(n, t) for n, t, _ in second]
    for (_, _, a), (_, _, b) in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()


def test_done_after_the_mission_limit(small_terrain: Terrain) -> None:
    sim = Simulator(draw_case(1, nominal=True), terrain=small_terrain)
    sim.apply_thrust(0, (0.0, 0.0, 1200.0 * 1.62 * 1.3))  # climbs away
    sim.advance_to(150 * NS_PER_S)
    assert not sim.done
    sim.advance_to(200 * NS_PER_S)
    assert sim.done
    assert not sim.outcome().touchdown
