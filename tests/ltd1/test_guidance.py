"""LTD-1 onboard guidance: ZEM/ZEV to the low gate, phase B, the command task."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.ltd1.onboard import load_onboard

ISP_G0 = 311.0 * 9.80665


guid = load_onboard("guidance")
Law = Callable[[np.ndarray, np.ndarray], np.ndarray]


def integrate(law: Law, r0: tuple[float, ...], v0: tuple[float, ...], stop: Callable[[np.ndarray],
              bool], mass: float = 1200.0) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Point mass in 20 ms steps, the commanded thrust (clipped to 1000-5000 N) held over each.

    Returns:
        Final r, v, the elapsed time (s) and the propellant burnt (kg).
    """
    r, v = np.array(r0, dtype=float), np.array(v0, dtype=float)
    dt, t, burnt = 0.02, 0.0, 0.0
    while not stop(r) and t < 200.0:
        thrust = (mass - burnt) * law(r, v).astype(np.float64).reshape(3)
        norm = np.linalg.norm(thrust)
        thrust *= np.clip(norm, 1000.0, 5000.0) / norm
        accel = thrust / (mass - burnt) + guid.GRAVITY
        r += v * dt + 0.5 * accel * dt * dt
        v += accel * dt
        burnt += np.clip(norm, 1000.0, 5000.0) * dt / ISP_G0
        t += dt
    return r, v, t, burnt


@pytest.mark.parametrize(("r0", "v0"), [
    ((-1000.0, 0.0, 2000.0), (15.0, 0.0, -30.0)),  # nominal high gate
    ((-1250.0, 180.0, 2030.0), (16.0, -1.0, -29.0)),  # dispersed
    ((-800.0, -150.0, 1970.0), (14.0, 1.0, -31.0)),
])
def test_zem_zev_flies_from_high_gate_to_the_low_gate(r0: tuple[float, ...],
                                                      v0: tuple[float, ...]) -> None:
    r, v, t, burnt = integrate(guid.zem_zev, r0, v0, lambda r: r[2] < 30.0)
    assert np.linalg.norm(r - guid.LOW_GATE_R) < 1.0
    # The 2 s t_go floor leaves about 0.3 m/s at the gate (see zem_zev_accel).
    assert np.all(np.abs(v - guid.LOW_GATE_V) < 0.3)
    assert np.linalg.norm(v - guid.LOW_GATE_V) < 0.4
    assert 55.0 < t < 75.0 and burnt < 60.0


def test_zem_zev_at_the_gate_only_compensates_gravity() -> None:
    accel = guid.zem_zev(guid.LOW_GATE_R, guid.LOW_GATE_V)
    assert accel.dtype == np.float32 and accel.shape == (1, 3)
    np.testing.assert_allclose(accel[0], [0.0, 0.0, 1.62], atol=1e-5)  # and carries on through
    out = guid.zemzev_guidance({"state": np.array([[-1000, 0, 2000, 15, 0, -30]], np.float32)})
    np.testing.assert_array_equal(out["accel_cmd"], guid.zem_zev((-1000, 0, 2000), (15, 0, -30)))


def test_time_to_go_solves_the_quartic() -> None:
    dr, v, v_f = np.array([1000.0, 0.0, -1970.0]), np.array([15.0, 0.0, -30.0]), np.array(
        guid.LOW_GATE_V)
    t = guid.time_to_go(dr, v, v_f, 0.0)
    a4 = 0.5 * 1.62**2
    residual = (a4 * t**4 - 2 * (v @ v + v @ v_f + v_f @ v_f) * t**2 + 12 * dr @ (v + v_f) * t
                - 18 * dr @ dr)
    assert residual == pytest.approx(0.0, abs=1e-6 * 18 * dr @ dr)
    assert guid.time_to_go(dr, v, v_f, 1.0) < t  # a time weight shortens the flight


def test_phase_b_lands_softly_from_the_low_gate() -> None:
    r, v, t, _ = integrate(lambda r, v: guid.phase_b(r, v), (3.0, -2.0, 30.0),
                           (0.3, -0.2, -1.8), lambda r: r[2] <= 0.0, mass=1136.0)
    assert -2.0 <= v[2] < -1.4 and np.hypot(v[0], v[1]) < 0.2
    assert np.hypot(r[0], r[1]) < 1.0 and 15.0 < t < 25.0


# --- Command ----------------------------------------------------------------------------------

STATE = np.array([[-500.0, 20.0, 1000.0, 12.0, 0.0, -25.0, 0, 0, 0, 990.0, 5.0, 5.0]])


def reference(state: np.ndarray = STATE) -> np.ndarray:
    return guid.zem_zev(state[0, :3], state[0, 3:6]).astype(np.float64)


def command_inputs(accel: np.ndarray, state: np.ndarray = STATE) -> dict[str, np.ndarray]:
    return {"accel_cmd": np.asarray(accel, dtype=np.float32).reshape(1, 3), "state": state}


def test_command_before_the_handover_holds_against_gravity() -> None:
    command = guid.Command()
    out = command.run(command_inputs(np.zeros(3), np.zeros((1, 12))))
    assert out["thrust"].dtype == np.float32 and out["thrust"].shape == (3,)
    np.testing.assert_allclose(out["thrust"], [0.0, 0.0, 1200.0 * 1.62], rtol=1e-6)
    np.testing.assert_array_equal(out["status"], [[0.0, 0.0, 0.0]])


def test_command_flies_the_learned_command_and_burns_mass() -> None:
    command = guid.Command()
    learned = reference() + np.array([0.3, 0.0, 0.0])
    out = command.run(command_inputs(learned))
    np.testing.assert_allclose(out["thrust"], 1200.0 * learned[0], rtol=1e-5)
    assert out["status"][0, 0] == 1.0 and out["status"][0, 1] == pytest.approx(0.3, abs=1e-5)
    magnitude = float(np.linalg.norm(out["thrust"]))
    assert command.mass_kg == pytest.approx(1200.0 - magnitude * 0.02 / ISP_G0, rel=1e-6)


def test_command_latches_on_a_non_finite_command() -> None:
    command = guid.Command()
    out = command.run(command_inputs([np.nan, 0.0, 1.0]))
    assert out["status"][0, 0] == 0.0 and out["status"][0, 1] == -1.0
    np.testing.assert_allclose(out["thrust"], 1200.0 * reference()[0], rtol=1e-5)
    out = command.run(command_inputs(reference()))  # good again: stays latched
    assert out["status"][0, 0] == 0.0


def test_command_latches_on_a_sustained_deviation_only() -> None:
    command = guid.Command()
    deviating = reference() + np.array([0.0, 0.8, 0.0])
    for _ in range(25):  # 0.5 s: not yet "more than 0.5 s"
        assert command.run(command_inputs(deviating))["status"][0, 0] == 1.0
    command.run(command_inputs(reference()))  # a good one resets the count
    for _ in range(25):
        assert command.run(command_inputs(deviating))["status"][0, 0] == 1.0
    out = command.run(command_inputs(deviating))  # the 26th in a row: 0.52 s
    assert out["status"][0, 0] == 0.0
    np.testing.assert_allclose(out["thrust"], command.mass_kg * reference()[0], rtol=1e-3)
    assert command.run(command_inputs(reference()))["status"][0, 0] == 0.0  # latched


def test_command_classical_config_flies_its_own_zem_zev() -> None:
    command = guid.Command(learned=False)
    out = command.run(command_inputs([np.nan, np.nan, np.nan]))
    np.testing.assert_allclose(out["thrust"], 1200.0 * reference()[0], rtol=1e-5)
    np.testing.assert_array_equal(out["status"], [[0.0, -1.0, 0.0]])
    out = command.run(command_inputs(reference()))
    assert out["status"][0, 1] < 1e-5


def test_command_switches_to_phase_b_below_30_m_and_stays() -> None:
    command = guid.Command()
    low = STATE.copy()
    low[0, :6] = [2.0, -1.0, 29.9, 0.2, 0.1, -1.6]
    out = command.run(command_inputs(reference(low), low))
    expected = guid.phase_b(low[0, :3], low[0, 3:6]).astype(np.float64)[0]
    np.testing.assert_allclose(out["thrust"], 1200.0 * expected, rtol=1e-5)
    np.testing.assert_array_equal(out["status"], [[0.0, 0.0, 1.0]])
    low[0, 2] = 31.0  # noise back above: phase B is latched
    assert command.run(command_inputs(reference(low), low))["status"][0, 2] == 1.0


@pytest.mark.parametrize(("v_z", "magnitude"), [(-10.0, 5000.0), (1.0, 1000.0)])
def test_allocation_clips_the_magnitude_and_keeps_the_direction(v_z: float,
                                                                magnitude: float) -> None:
    state = STATE.copy()
    state[0, :6] = [0.5, 0.0, 20.0, 0.0, 0.0, v_z]  # phase B: a_z = −0.8(v_z + 1.5) + 1.62
    accel = guid.phase_b(state[0, :3], state[0, 3:6]).astype(np.float64)[0]
    thrust = guid.Command().run(command_inputs(np.zeros(3), state))["thrust"].astype(np.float64)
    assert np.linalg.norm(thrust) == pytest.approx(magnitude, rel=1e-6)
    np.testing.assert_allclose(thrust / magnitude, accel / np.linalg.norm(accel), atol=1e-6)


def test_command_warmup_leaves_the_state_alone() -> None:
    command = guid.Command()
    command.warmup(command_inputs([np.nan, 0.0, 0.0]))
    assert command.mass_kg == 1200.0
    assert command.run(command_inputs(reference()))["status"][0, 0] == 1.0
