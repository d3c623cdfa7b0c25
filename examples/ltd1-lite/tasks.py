"""Python tasks and the synthetic sensor source of the ltd1-lite example mission.

A cut-down LTD-1 descent: the vehicle follows a PD guidance law from 2 km to
the low gate. The source simulates the truth and its sensors (IMU at 100 Hz,
altimeter at 10 Hz, a 64x64 nadir camera at 5 Hz) from a seed. It is open loop
until the bus and the simulator exist: commands are computed and published but
the truth follows the same law, so sensors are consistent with them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from flightai.sched.io import Sample

G_MOON = np.array([0.0, 0.0, -1.62])
STATE_SCALE = np.array([1000.0, 1000.0, 2000.0, 30.0, 30.0, 40.0])
KP, KD = 0.002, 0.08
MASS_KG = 1200.0
FRAME_NS = 10_000_000

Arrays = Mapping[str, npt.NDArray[np.generic]]


def pd_law(state: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Commanded acceleration (m/s^2, gravity excluded) from state (r m, v m/s)."""
    return -KP * state[:3] - KD * state[3:]


def pd_guidance(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Classical guidance: the fallback of the learned guidance model."""
    state = inputs["state"].astype(np.float64).reshape(6)
    return {"accel_cmd": pd_law(state).astype(np.float32).reshape(1, 3)}


def allocate_thrust(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Thrust vector (N) that gives the commanded acceleration against lunar gravity."""
    accel = inputs["accel_cmd"].astype(np.float64).reshape(3)
    thrust = MASS_KG * (accel - G_MOON)
    norm = float(np.linalg.norm(thrust))
    thrust *= np.clip(norm, 1000.0, 5000.0) / max(norm, 1e-9)
    return {"thrust": thrust.astype(np.float32)}


class NavFilter:
    """Dead-reckoning on the IMU with altimeter corrections (a complementary filter).

    Args:
        r0_m: initial position estimate.
        v0_mps: initial velocity estimate.
        gain: altimeter correction gain per update.
    """

    def __init__(self, r0_m: list[float], v0_mps: list[float], gain: float = 0.05) -> None:
        self._r = np.array(r0_m, dtype=np.float64)
        self._v = np.array(v0_mps, dtype=np.float64)
        self._gain = gain
        self._dt_s = 0.02
        self._last_alt = np.nan

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
        """Propagate one 20 ms step, then correct altitude with a new altimeter reading."""
        accel = inputs["accel"].astype(np.float64).reshape(3) + G_MOON
        self._r += self._v * self._dt_s + 0.5 * accel * self._dt_s**2
        self._v += accel * self._dt_s
        alt = float(inputs["altitude"][0])
        if alt > 0 and alt != self._last_alt:
            self._last_alt = alt
            innovation = alt - self._r[2]
            self._r[2] += self._gain * innovation
            self._v[2] += 0.1 * self._gain * innovation
        return {"state": np.concatenate([self._r, self._v]).astype(np.float32).reshape(1, 6)}


class SyntheticDescent:
    """Seeded truth and sensors, stepped in integer nanoseconds.

    Args:
        seed: the one seed all randomness flows from.
        r0_m: initial position relative to the low gate.
        v0_mps: initial velocity.
    """

    def __init__(self, seed: int = 1, r0_m: tuple[float, float, float] = (1000.0, 0.0, 1970.0),
                 v0_mps: tuple[float, float, float] = (15.0, 0.0, -30.0)) -> None:
        self._rng = np.random.default_rng(seed)
        self._r = np.array(r0_m, dtype=np.float64)
        self._v = np.array(v0_mps, dtype=np.float64)
        self._bias = self._rng.normal(0.0, 0.0098, 3)
        self._terrain = self._rng.random((256, 256)).astype(np.float32)
        self._t_ns = 0

    def poll(self, t_ns: int) -> list[Sample]:
        """Advance the truth to ``t_ns`` and return the measurements taken on the way."""
        samples: list[Sample] = []
        while self._t_ns <= t_ns:
            samples.extend(self._measure(self._t_ns))
            accel = pd_law(np.concatenate([self._r, self._v]))
            dt_s = FRAME_NS / 1e9
            self._r += self._v * dt_s + 0.5 * accel * dt_s**2
            self._v += accel * dt_s
            self._t_ns += FRAME_NS
        return samples

    def _measure(self, t_ns: int) -> list[Sample]:
        accel = pd_law(np.concatenate([self._r, self._v]))
        noise = self._rng.normal(0.0, 0.001, 3)
        specific_force = accel - G_MOON
        out = [Sample("imu.accel", t_ns, (specific_force + self._bias + noise).astype(np.float32))]
        if t_ns % 100_000_000 == 0:
            sigma = max(0.5, 0.005 * self._r[2])
            alt = self._r[2] + self._rng.normal(0.0, sigma)
            out.append(Sample("altimeter.range", t_ns, np.array([alt], dtype=np.float32)))
        if t_ns % 200_000_000 == 0:
            out.append(Sample("camera.image", t_ns, self._render()))
        return out

    def _render(self) -> npt.NDArray[np.float32]:
        x = int(self._r[0] / 4.0) % 192
        y = int(self._r[1] / 4.0) % 192
        gain = self._rng.uniform(0.8, 1.2)
        crop = self._terrain[y:y + 64, x:x + 64] * gain
        crop = crop + self._rng.normal(0.0, 0.03, crop.shape)
        return crop.astype(np.float32).reshape(1, 1, 64, 64)
