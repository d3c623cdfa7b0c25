from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hil.ltd1.constants import (
    COMMAND_LATENCY_NS,
    DISP_EXTRA_LATENCY_MAX_NS,
    HIGH_GATE_R_M,
    HIGH_GATE_V_MPS,
    ISP_S,
    WET_MASS_KG,
)
from hil.ltd1.dispersions import Case, Effect, draw_case

FIELDS_BY_EFFECT = {
    Effect.INITIAL_STATE: {"r0_m", "v0_mps", "handover_r_m", "handover_v_mps"},
    Effect.KNOWLEDGE: {"handover_r_m", "handover_v_mps"},
    Effect.MASS: {"wet_mass_kg"},
    Effect.ISP: {"isp_s"},
    Effect.THRUST_SCALE: {"thrust_scale"},
    Effect.MISALIGNMENT: {"misalignment_rad"},
    Effect.LATENCY: {"latency_ns"},
    Effect.ACCEL_BIAS: {"accel_bias_mps2"},
    Effect.SUN: {"sun_elevation_deg", "sun_azimuth_deg"},
    Effect.CAMERA_GAIN: {"camera_gain"},
    Effect.IMU_NOISE: {"imu_noise_seed"},
    Effect.ALTIMETER_NOISE: {"altimeter_noise_seed"},
    Effect.CAMERA_NOISE: {"camera_noise_seed"},
}


def changed(a: Case, b: Case) -> set[str]:
    return {f.name for f in dataclasses.fields(Case) if getattr(a, f.name) != getattr(b, f.name)}


def test_same_seed_same_case() -> None:
    assert draw_case(11) == draw_case(11)
    assert draw_case(11) != draw_case(12)


@pytest.mark.parametrize("effect", list(Effect))
def test_reseeding_one_effect_changes_only_its_fields(effect: Effect) -> None:
    assert changed(draw_case(11), draw_case(11, reseed={effect: 999})) == FIELDS_BY_EFFECT[effect]


def test_nominal_case_has_no_dispersion_but_seeded_noise() -> None:
    case = draw_case(5, nominal=True)
    assert case.r0_m == case.handover_r_m == HIGH_GATE_R_M
    assert case.v0_mps == case.handover_v_mps == HIGH_GATE_V_MPS
    assert (case.wet_mass_kg, case.isp_s, case.thrust_scale) == (WET_MASS_KG, ISP_S, 1.0)
    assert case.misalignment_rad == (0.0, 0.0)
    assert case.latency_ns == COMMAND_LATENCY_NS
    assert case.accel_bias_mps2 == (0.0, 0.0, 0.0)
    assert (case.sun_elevation_deg, case.sun_azimuth_deg, case.camera_gain) == (22.0, 60.0, 1.0)
    assert case.imu_noise_seed == draw_case(5).imu_noise_seed
    assert case.imu_noise_seed != draw_case(6, nominal=True).imu_noise_seed
    assert len({case.imu_noise_seed, case.altimeter_noise_seed, case.camera_noise_seed}) == 3


def test_dispersion_statistics() -> None:
    cases = [draw_case(seed) for seed in range(400)]
    r0 = np.array([c.r0_m for c in cases]) - HIGH_GATE_R_M
    np.testing.assert_allclose(r0.std(axis=0), [150.0, 150.0, 20.0], rtol=0.15)
    know = np.array([c.handover_r_m for c in cases]) - np.array([c.r0_m for c in cases])
    np.testing.assert_allclose(know.std(axis=0), [100.0, 100.0, 10.0], rtol=0.15)
    assert np.std([c.wet_mass_kg for c in cases]) == pytest.approx(12.0, rel=0.15)
    latencies = [c.latency_ns - COMMAND_LATENCY_NS for c in cases]
    assert min(latencies) >= 0 and max(latencies) <= DISP_EXTRA_LATENCY_MAX_NS
    gains = [c.camera_gain for c in cases]
    assert min(gains) >= 0.8 and max(gains) <= 1.2
    mis = np.degrees([c.misalignment_rad for c in cases])
    np.testing.assert_allclose(mis.std(axis=0), [0.5, 0.5], rtol=0.15)
    bias = np.array([c.accel_bias_mps2 for c in cases])
    np.testing.assert_allclose(bias.std(axis=0), 9.80665e-3, rtol=0.15)
    elevation = [c.sun_elevation_deg for c in cases]
    assert np.std(elevation) == pytest.approx(5.0, rel=0.15)


def test_stress_sun_is_wider_and_above_the_horizon() -> None:
    cases = [draw_case(seed, stress_sun=True) for seed in range(200)]
    assert np.std([c.sun_azimuth_deg for c in cases]) == pytest.approx(45.0, rel=0.2)
    assert min(c.sun_elevation_deg for c in cases) >= 5.0
    # Only the sun changes with the stress spread.
    assert changed(draw_case(3), draw_case(3, stress_sun=True)) <= {
        "stress_sun", "sun_elevation_deg", "sun_azimuth_deg"}
    assert math.isclose(draw_case(3, stress_sun=True, nominal=True).sun_elevation_deg, 22.0)
