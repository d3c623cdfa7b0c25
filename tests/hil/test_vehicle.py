from __future__ import annotations

import math

import pytest

from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.ltd1.constants import G0_MPS2, GRAVITY_MPS2, ISP_S, THRUST_MAX_N, THRUST_MIN_N
from hil.ltd1.vehicle import Vehicle

G = -GRAVITY_MPS2[2]
EXHAUST_MPS = ISP_S * G0_MPS2


def flat(_x: float, _y: float) -> float:
    return 0.0


def make(**kwargs: object) -> Vehicle:
    args: dict[str, object] = {"r_m": (0.0, 0.0, 1000.0), "v_mps": (1.0, -2.0, 3.0),
                               "mass_kg": 1200.0, "height_at_m": flat}
    args.update(kwargs)
    return Vehicle(**args)  # type: ignore[arg-type]


def test_free_fall_matches_analytic() -> None:
    v = make(propellant_kg=0.0)
    v.advance_to(7 * NS_PER_S + 123)
    t = 7.000000123
    s = v.state()
    assert s.r_m == pytest.approx((t, -2.0 * t, 1000.0 + 3.0 * t - 0.5 * G * t * t), abs=1e-9)
    assert s.v_mps == pytest.approx((1.0, -2.0, 3.0 - G * t), abs=1e-12)
    assert s.mass_kg == 1200.0
    assert s.dv_sensed_mps == (0.0, 0.0, 0.0)
    assert v.flameout


def test_constant_thrust_matches_rocket_equation() -> None:
    v = make()
    thrust_n = 3000.0
    v.command(0, (0.0, 0.0, thrust_n))
    latency_s = v.latency_ns / NS_PER_S
    hover_n = 1200.0 * G
    t_s = 40.0
    v.advance_to(round(t_s * NS_PER_S))
    m_latency = 1200.0 - hover_n / EXHAUST_MPS * latency_s
    m_end = m_latency - thrust_n / EXHAUST_MPS * (t_s - latency_s)
    s = v.state()
    assert s.mass_kg == pytest.approx(m_end, rel=1e-12)
    assert v.propellant_used_kg == pytest.approx(1200.0 - m_end, rel=1e-9)
    dv_hover = EXHAUST_MPS * math.log(1200.0 / m_latency)
    dv_thrust = EXHAUST_MPS * math.log(m_latency / m_end)
    assert s.dv_sensed_mps[2] == pytest.approx(dv_hover + dv_thrust, rel=1e-12)
    assert s.v_mps[2] == pytest.approx(3.0 - G * t_s + dv_hover + dv_thrust, rel=1e-12)
    # Position: ∫ v dt of the rocket equation, by fine quadrature.
    def vz(t: float) -> float:
        if t < latency_s:
            m = 1200.0 - hover_n / EXHAUST_MPS * t
            return 3.0 - G * t + EXHAUST_MPS * math.log(1200.0 / m)
        m = m_latency - thrust_n / EXHAUST_MPS * (t - latency_s)
        return 3.0 - G * t + dv_hover + EXHAUST_MPS * math.log(m_latency / m)
    n = 20000
    h = t_s / n
    simpson = vz(0.0) + vz(t_s) + sum((4 if k % 2 else 2) * vz(k * h) for k in range(1, n))
    assert s.r_m[2] == pytest.approx(1000.0 + simpson * h / 3.0, abs=1e-6)


def test_latency_is_honoured() -> None:
    v = make(latency_ns=35 * NS_PER_MS)
    v.command(100 * NS_PER_MS, (0.0, 0.0, THRUST_MAX_N))
    v.advance_to(135 * NS_PER_MS)
    m_at_apply = v.state().mass_kg
    hover_rate = 1200.0 * G / EXHAUST_MPS
    assert m_at_apply == pytest.approx(1200.0 - hover_rate * 0.135, rel=1e-12)
    v.advance_to(145 * NS_PER_MS)
    assert v.state().mass_kg == pytest.approx(m_at_apply - THRUST_MAX_N / EXHAUST_MPS * 0.01,
                                              rel=1e-12)


@pytest.mark.parametrize(("command_n", "applied_n"), [
    ((0.0, 0.0, 9000.0), THRUST_MAX_N),
    ((0.0, 300.0, 400.0), THRUST_MIN_N),
    ((0.0, 0.0, 0.0), THRUST_MIN_N),
    ((1200.0, 0.0, 1600.0), 2000.0),
])
def test_thrust_magnitude_is_clipped(command_n: tuple[float, float, float],
                                     applied_n: float) -> None:
    v = make(latency_ns=0)
    v.command(0, command_n)
    v.advance_to(NS_PER_S)
    assert 1200.0 - v.state().mass_kg == pytest.approx(applied_n / EXHAUST_MPS, rel=1e-9)


def test_thrust_scale_and_misalignment() -> None:
    v = make(latency_ns=0, thrust_scale=1.02, misalignment_rad=(0.0, math.radians(0.5)))
    v.command(0, (0.0, 0.0, 2000.0))
    v.advance_to(10 * NS_PER_MS)
    dv = v.state().dv_sensed_mps
    assert math.hypot(*dv) / 0.01 == pytest.approx(2040.0 / 1200.0, rel=1e-4)
    # Rotation about +y tilts +z thrust towards +x.
    assert math.atan2(dv[0], dv[2]) == pytest.approx(math.radians(0.5), rel=1e-9)
    assert 1200.0 - v.state().mass_kg == pytest.approx(2040.0 / EXHAUST_MPS * 0.01, rel=1e-9)


def test_past_and_non_finite_commands_are_refused() -> None:
    v = make()
    v.advance_to(100 * NS_PER_MS)
    with pytest.raises(ValueError, match="before"):
        v.command(50 * NS_PER_MS, (0.0, 0.0, 2000.0))
    with pytest.raises(ValueError, match="finite"):
        v.command(100 * NS_PER_MS, (0.0, float("nan"), 2000.0))
    with pytest.raises(ValueError, match="back"):
        v.advance_to(99 * NS_PER_MS)


def test_chunking_does_not_change_the_trajectory() -> None:
    steps = [(k * 20 * NS_PER_MS, (50.0 * math.sin(k), 0.0, 1500.0 + 20.0 * k)) for k in range(200)]
    one, two = make(), make()
    for t_ns, cmd in steps:
        one.command(t_ns, cmd)
        one.advance_to(t_ns + 20 * NS_PER_MS)
    for t_ns, cmd in steps:
        two.command(t_ns, cmd)
        for dt in (3 * NS_PER_MS, 7 * NS_PER_MS + 1, 20 * NS_PER_MS):
            two.advance_to(t_ns + dt)
    assert one.state() == two.state()


def test_touchdown_on_terrain_stops_the_vehicle() -> None:
    # Free fall from 50 m onto a 5 m plateau at 1 m/s down.
    v = Vehicle((0.0, 0.0, 50.0), (0.5, 0.0, -1.0), 1200.0, lambda x, y: 5.0, propellant_kg=0.0)
    v.advance_to(30 * NS_PER_S)
    td = v.touchdown
    assert td is not None
    t_s = (-1.0 + math.sqrt(1.0 + 2.0 * G * 45.0)) / G
    assert td.t_ns == pytest.approx(t_s * NS_PER_S, abs=2)
    assert td.v_mps[2] == pytest.approx(-1.0 - G * t_s, rel=1e-9)
    assert td.r_m[2] == pytest.approx(5.0, abs=1e-6)
    assert not td.early_contact
    s = v.state()
    assert s.t_ns == 30 * NS_PER_S
    assert s.r_m == td.r_m
    assert s.v_mps == (0.0, 0.0, 0.0)
    # The accelerometer feels the impact, then the ground holding the vehicle up.
    assert s.dv_sensed_mps[2] == pytest.approx(-td.v_mps[2] + G * (30.0 - t_s), rel=1e-9)
    v.command(30 * NS_PER_S, (0.0, 0.0, 5000.0))  # ignored once down
    v.advance_to(31 * NS_PER_S)
    assert v.state().r_m == td.r_m


def test_contact_above_low_gate_altitude_is_early() -> None:
    v = Vehicle((0.0, 0.0, 100.0), (0.0, 0.0, -10.0), 1200.0, lambda x, y: 40.0,
                propellant_kg=0.0)
    v.advance_to(10 * NS_PER_S)
    assert v.touchdown is not None
    assert v.touchdown.early_contact


def test_engine_stops_when_propellant_runs_out() -> None:
    v = make(propellant_kg=1.0, latency_ns=0)
    v.command(0, (0.0, 0.0, 5000.0))
    assert 1.0 / (5000.0 / EXHAUST_MPS) < 1.0  # burns out within the second
    v.advance_to(NS_PER_S)
    assert v.flameout
    assert v.propellant_used_kg == pytest.approx(1.0, abs=1e-6)
    assert v.state().dv_sensed_mps[2] == pytest.approx(EXHAUST_MPS * math.log(1200.0 / 1199.0),
                                                       rel=1e-6)
