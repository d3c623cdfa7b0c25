"""Monte Carlo cases: every LTD-1 dispersion drawn from one seed, one stream per effect.

Effect e draws from ``SeedSequence(seed, spawn_key=(e,))`` (the same as
``SeedSequence(seed).spawn(n)[e]`` for any n > e), so redrawing one effect,
or adding a new effect at the end of :class:`Effect`, never shifts another.
Dispersions are Gaussian 1σ (constants ``DISP_*``) except the extra command
latency and the camera gain (uniform). The sun elevation is clipped to
[5°, 85°]: at the stress 1σ of 15° a Gaussian draw would otherwise put the
sun below the horizon.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hil.ltd1.constants import (
    ACCEL_BIAS_MPS2,
    CAMERA_GAIN_RANGE,
    COMMAND_LATENCY_NS,
    DISP_EXTRA_LATENCY_MAX_NS,
    DISP_ISP_FRACTION,
    DISP_KNOWLEDGE_R_M,
    DISP_KNOWLEDGE_V_MPS,
    DISP_MASS_FRACTION,
    DISP_MISALIGNMENT_DEG,
    DISP_R0_M,
    DISP_SUN_DEG,
    DISP_SUN_STRESS_DEG,
    DISP_THRUST_SCALE,
    DISP_V0_MPS,
    FLIGHT_SUN_AZIMUTH_DEG,
    FLIGHT_SUN_ELEVATION_DEG,
    HIGH_GATE_R_M,
    HIGH_GATE_V_MPS,
    ISP_S,
    WET_MASS_KG,
)
from hil.ltd1.vehicle import Vec3

_SUN_ELEVATION_LIMITS_DEG = (5.0, 85.0)


class Effect(enum.IntEnum):
    """One random stream each; the value is the stream's spawn key (append only)."""

    INITIAL_STATE = 0
    KNOWLEDGE = 1
    MASS = 2
    ISP = 3
    THRUST_SCALE = 4
    MISALIGNMENT = 5
    LATENCY = 6
    ACCEL_BIAS = 7
    SUN = 8
    CAMERA_GAIN = 9
    IMU_NOISE = 10
    ALTIMETER_NOISE = 11
    CAMERA_NOISE = 12


@dataclass(frozen=True)
class Case:
    """One descent's dispersed parameters (SI units, angles as named).

    Attributes:
        seed: the case seed.
        nominal: every dispersion is zero (noise streams still seeded).
        stress_sun: the sun was drawn with the stress spread.
        r0_m: true position at high gate (m).
        v0_mps: true velocity at high gate (m/s).
        handover_r_m: the flight software's position estimate at t = 0 (m).
        handover_v_mps: its velocity estimate (m/s).
        wet_mass_kg: mass at high gate (kg).
        isp_s: specific impulse (s).
        thrust_scale: actual over commanded thrust.
        misalignment_rad: thrust rotation about x, then y (rad).
        latency_ns: command latency, nominal plus extra (ns).
        accel_bias_mps2: accelerometer bias (m/s²).
        sun_elevation_deg: sun elevation (deg).
        sun_azimuth_deg: sun azimuth, from +x towards +y (deg).
        camera_gain: camera gain.
        imu_noise_seed: seed of the accelerometer's noise Generator.
        altimeter_noise_seed: seed of the altimeter's noise Generator.
        camera_noise_seed: seed of the camera's noise Generator.
    """

    seed: int
    nominal: bool
    stress_sun: bool
    r0_m: Vec3
    v0_mps: Vec3
    handover_r_m: Vec3
    handover_v_mps: Vec3
    wet_mass_kg: float
    isp_s: float
    thrust_scale: float
    misalignment_rad: tuple[float, float]
    latency_ns: int
    accel_bias_mps2: Vec3
    sun_elevation_deg: float
    sun_azimuth_deg: float
    camera_gain: float
    imu_noise_seed: int
    altimeter_noise_seed: int
    camera_noise_seed: int


def draw_case(seed: int, *, nominal: bool = False, stress_sun: bool = False,
              reseed: Mapping[Effect, int] | None = None) -> Case:
    """Draw a case from ``seed``.

    Args:
        seed: case seed (≥ 0).
        nominal: zero every dispersion (sun 22°/60°, gain 1); noise stays seeded.
        stress_sun: draw the sun with the stress spread (ignored when nominal).
        reseed: effects to draw from another seed instead (same spawn key),
            leaving every other effect as ``seed`` draws it.
    """
    def rng(effect: Effect) -> np.random.Generator:
        entropy = (reseed or {}).get(effect, seed)
        return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(effect,)))

    def noise_seed(effect: Effect) -> int:
        words = rng(effect).integers(0, 2**63, size=2)
        return int(words[0]) << 63 | int(words[1])

    def normal3(effect_rng: np.random.Generator, sigma: Vec3) -> Vec3:
        d = effect_rng.standard_normal(3)
        return (float(d[0]) * sigma[0], float(d[1]) * sigma[1], float(d[2]) * sigma[2])

    def add(a: Vec3, b: Vec3) -> Vec3:
        return (a[0] + b[0], a[1] + b[1], a[2] + b[2])

    nominal_case = Case(
        seed=seed, nominal=True, stress_sun=False, r0_m=HIGH_GATE_R_M, v0_mps=HIGH_GATE_V_MPS,
        handover_r_m=HIGH_GATE_R_M, handover_v_mps=HIGH_GATE_V_MPS, wet_mass_kg=WET_MASS_KG,
        isp_s=ISP_S, thrust_scale=1.0, misalignment_rad=(0.0, 0.0),
        latency_ns=COMMAND_LATENCY_NS, accel_bias_mps2=(0.0, 0.0, 0.0),
        sun_elevation_deg=FLIGHT_SUN_ELEVATION_DEG, sun_azimuth_deg=FLIGHT_SUN_AZIMUTH_DEG,
        camera_gain=1.0, imu_noise_seed=noise_seed(Effect.IMU_NOISE),
        altimeter_noise_seed=noise_seed(Effect.ALTIMETER_NOISE),
        camera_noise_seed=noise_seed(Effect.CAMERA_NOISE))
    if nominal:
        return nominal_case
    init = rng(Effect.INITIAL_STATE)
    r0 = add(HIGH_GATE_R_M, normal3(init, DISP_R0_M))
    v0 = add(HIGH_GATE_V_MPS, normal3(init, (DISP_V0_MPS,) * 3))
    know = rng(Effect.KNOWLEDGE)
    mis = rng(Effect.MISALIGNMENT).standard_normal(2) * math.radians(DISP_MISALIGNMENT_DEG)
    sun_sigma = DISP_SUN_STRESS_DEG if stress_sun else DISP_SUN_DEG
    sun = rng(Effect.SUN).standard_normal(2)
    elevation = FLIGHT_SUN_ELEVATION_DEG + sun_sigma[0] * float(sun[0])
    return dataclasses.replace(
        nominal_case, nominal=False, stress_sun=stress_sun, r0_m=r0, v0_mps=v0,
        handover_r_m=add(r0, normal3(know, DISP_KNOWLEDGE_R_M)),
        handover_v_mps=add(v0, normal3(know, (DISP_KNOWLEDGE_V_MPS,) * 3)),
        wet_mass_kg=WET_MASS_KG * (1.0 + DISP_MASS_FRACTION * _normal(rng(Effect.MASS))),
        isp_s=ISP_S * (1.0 + DISP_ISP_FRACTION * _normal(rng(Effect.ISP))),
        thrust_scale=1.0 + DISP_THRUST_SCALE * _normal(rng(Effect.THRUST_SCALE)),
        misalignment_rad=(float(mis[0]), float(mis[1])),
        latency_ns=COMMAND_LATENCY_NS + int(
            rng(Effect.LATENCY).integers(0, DISP_EXTRA_LATENCY_MAX_NS, endpoint=True)),
        accel_bias_mps2=normal3(rng(Effect.ACCEL_BIAS), (ACCEL_BIAS_MPS2,) * 3),
        sun_elevation_deg=min(max(elevation, _SUN_ELEVATION_LIMITS_DEG[0]),
                              _SUN_ELEVATION_LIMITS_DEG[1]),
        sun_azimuth_deg=FLIGHT_SUN_AZIMUTH_DEG + sun_sigma[1] * float(sun[1]),
        camera_gain=float(rng(Effect.CAMERA_GAIN).uniform(*CAMERA_GAIN_RANGE)),
    )


def _normal(rng: np.random.Generator) -> float:
    return float(rng.standard_normal())
