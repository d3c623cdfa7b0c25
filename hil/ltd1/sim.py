"""One LTD-1 descent in truth: vehicle, terrain and sensors driven by a dispersed case.

Sensors sample on a 10 ms grid from t = 0 (IMU and touchdown every instant,
altimeter every 100 ms, camera every 200 ms); ``nav.handover`` is sent once at
t = 0. Samples are taken as truth passes their instant and queued until
:meth:`Simulator.sensor_samples_until` hands them out. Everything follows from
the case and the thrust commands: the same inputs give the same samples bit
for bit, however the caller chunks time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hil.ltd1.constants import (
    ALTIMETER_PERIOD_NS,
    CAMERA_PERIOD_NS,
    IMU_PERIOD_NS,
    MAX_MISSION_NS,
    TERRAIN_SEED,
)
from hil.ltd1.dispersions import Case
from hil.ltd1.render import shaded_pyramid
from hil.ltd1.sensors import Accelerometer, Altimeter, Camera, TouchdownSensor
from hil.ltd1.terrain import Float64Array, Terrain
from hil.ltd1.vehicle import Vehicle

SIGNALS = ("nav.handover", "imu.dv", "altimeter.range", "camera.image", "touchdown")
"""Sensor signals in the order samples of one instant are returned."""

Sample = tuple[str, int, npt.NDArray[Any]]
"""(signal, measurement time t_ns, value) with the signal's dtype and shape."""


@dataclass(frozen=True, eq=False)
class Truth:
    """Truth at the simulator's current time.

    Attributes:
        t_ns: mission time (ns).
        r_m: position, float64 [3] (m).
        v_mps: velocity, float64 [3] (m/s).
        mass_kg: mass (kg).
        agl_m: height above the terrain below (m).
    """

    t_ns: int
    r_m: Float64Array
    v_mps: Float64Array
    mass_kg: float
    agl_m: float


@dataclass(frozen=True)
class Outcome:
    """How a descent ended (or stands, if it has not).

    Attributes:
        touchdown: the vehicle reached the terrain.
        t_ns: touchdown time, else the current time (ns).
        vertical_speed_mps: |v_z| at touchdown, else now (m/s).
        horizontal_speed_mps: ‖v_xy‖ at touchdown, else now (m/s).
        landing_error_m: horizontal distance to the target at touchdown, else now (m).
        propellant_kg: propellant burnt (kg).
        early_contact: terrain contact before touchdown: the first contact came
            above the low gate's altitude (z > 30 m), i.e. the vehicle flew into
            terrain before its terminal descent.
        flameout: the usable propellant ran out.
        r_m: position at touchdown, else now (m).
    """

    touchdown: bool
    t_ns: int
    vertical_speed_mps: float
    horizontal_speed_mps: float
    landing_error_m: float
    propellant_kg: float
    early_contact: bool
    flameout: bool
    r_m: tuple[float, float, float]


class Simulator:
    """Truth side of one descent: advance time, take thrust commands, emit sensor samples."""

    def __init__(self, case: Case, terrain_seed: int = TERRAIN_SEED, *,
                 terrain: Terrain | None = None) -> None:
        """Set up the case at t = 0.

        Args:
            case: the dispersed case.
            terrain_seed: mission terrain seed (loaded from the disk cache).
            terrain: a terrain to use instead of loading ``terrain_seed``.
        """
        self.case = case
        self.terrain = terrain if terrain is not None else Terrain.load(terrain_seed)
        self._vehicle = Vehicle(
            case.r0_m, case.v0_mps, case.wet_mass_kg, self.terrain.height_at_m,
            isp_s=case.isp_s, thrust_scale=case.thrust_scale,
            misalignment_rad=case.misalignment_rad, latency_ns=case.latency_ns)
        self._accelerometer = Accelerometer(
            case.accel_bias_mps2, np.random.default_rng(case.imu_noise_seed))
        self._altimeter = Altimeter(np.random.default_rng(case.altimeter_noise_seed))
        self._camera = Camera(
            shaded_pyramid(self.terrain, case.sun_elevation_deg, case.sun_azimuth_deg),
            case.camera_gain, np.random.default_rng(case.camera_noise_seed))
        self._touchdown = TouchdownSensor()
        self._next_sample_ns = 0
        handover = np.array(case.handover_r_m + case.handover_v_mps, np.float64)
        self._pending: list[Sample] = [("nav.handover", 0, handover)]

    @property
    def t_ns(self) -> int:
        """Current mission time (ns)."""
        return self._vehicle.t_ns

    @property
    def done(self) -> bool:
        """Touched down, or the 200 s mission limit has passed."""
        return self._vehicle.touchdown is not None or self.t_ns >= MAX_MISSION_NS

    def advance_to(self, t_ns: int) -> None:
        """Advance truth to ``t_ns`` (ns), sampling every sensor instant on the way.

        Raises:
            ValueError: ``t_ns`` is before the current time.
        """
        if t_ns < self.t_ns:
            raise ValueError(f"cannot go back from {self.t_ns} ns to {t_ns} ns")
        while self._next_sample_ns <= t_ns:
            self._vehicle.advance_to(self._next_sample_ns)
            self._sample(self._next_sample_ns)
            self._next_sample_ns += IMU_PERIOD_NS
        self._vehicle.advance_to(t_ns)

    def apply_thrust(self, t_cmd_ns: int, thrust_n: npt.ArrayLike) -> None:
        """Command thrust (N, landing frame) published at ``t_cmd_ns``; applied after latency.

        Raises:
            ValueError: non-finite, or taking effect before the current time.
        """
        self._vehicle.command(t_cmd_ns, np.asarray(thrust_n, np.float64).reshape(3).tolist())

    def sensor_samples_until(self, t_ns: int) -> list[Sample]:
        """Every sample measured at or before ``t_ns`` not yet returned, oldest first.

        Advances truth to ``t_ns`` first if it is behind. Samples of one instant
        come in :data:`SIGNALS` order.
        """
        if t_ns > self.t_ns:
            self.advance_to(t_ns)
        split = 0
        while split < len(self._pending) and self._pending[split][1] <= t_ns:
            split += 1
        out, self._pending = self._pending[:split], self._pending[split:]
        return out

    def truth(self) -> Truth:
        """Truth now."""
        s = self._vehicle.state()
        return Truth(s.t_ns, np.array(s.r_m), np.array(s.v_mps), s.mass_kg,
                     self._vehicle.agl_m())

    def outcome(self) -> Outcome:
        """The touchdown's figures, or the current ones if there was none."""
        td = self._vehicle.touchdown
        if td is None:
            s = self._vehicle.state()
            t_ns, r, v, contact = s.t_ns, s.r_m, s.v_mps, False
        else:
            t_ns, r, v, contact = td.t_ns, td.r_m, td.v_mps, td.early_contact
        return Outcome(
            touchdown=td is not None, t_ns=t_ns, vertical_speed_mps=abs(v[2]),
            horizontal_speed_mps=math.hypot(v[0], v[1]), landing_error_m=math.hypot(r[0], r[1]),
            propellant_kg=self._vehicle.propellant_used_kg, early_contact=contact,
            flameout=self._vehicle.flameout, r_m=r)

    def _sample(self, t_ns: int) -> None:
        """Queue every sensor's sample due at ``t_ns`` (truth is at ``t_ns``)."""
        s = self._vehicle.state()
        x_m, y_m, z_m = s.r_m
        agl_m = z_m - self.terrain.height_at_m(x_m, y_m)
        self._pending.append(("imu.dv", t_ns, self._accelerometer.sample(t_ns, s.dv_sensed_mps)))
        if t_ns % ALTIMETER_PERIOD_NS == 0:
            reading = self._altimeter.sample(agl_m)
            if reading is not None:
                self._pending.append(("altimeter.range", t_ns, reading))
        if t_ns % CAMERA_PERIOD_NS == 0:
            self._pending.append(("camera.image", t_ns, self._camera.sample(x_m, y_m, agl_m)))
        self._pending.append(("touchdown", t_ns, self._touchdown.sample(agl_m)))
