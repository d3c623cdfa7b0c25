"""Truth dynamics of the lander: point mass, thrust with latency, propellant, touchdown.

ṙ = v, v̇ = F/m + g, ṁ = -‖F‖/(Isp·g0) with F = k_T·R·clip(T_cmd) held
piecewise constant between command events (R: the run's thrust misalignment).
Attitude is not modelled, so F is constant in the landing frame over a
segment and the rocket equation has a closed form, which this module
evaluates: no integration error, whatever the step. Segments end at every
command event and on a fixed 10 ms grid (where contact with the terrain is
checked); the grid does not depend on how callers chunk ``advance_to``, so the
trajectory is the same bit for bit however it is stepped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.ltd1.constants import (
    COMMAND_LATENCY_NS,
    G0_MPS2,
    GRAVITY_MPS2,
    ISP_S,
    LOW_GATE_R_M,
    THRUST_MAX_N,
    THRUST_MIN_N,
    USABLE_PROPELLANT_KG,
)

Vec3 = tuple[float, float, float]

SUBSTEP_NS = 10 * NS_PER_MS
_SERIES_BELOW = 1e-3  # use the series of the position term when q·dt/m is below this


@dataclass(frozen=True)
class VehicleState:
    """Truth at one instant.

    Attributes:
        t_ns: mission time (ns).
        r_m: position (m).
        v_mps: velocity (m/s).
        mass_kg: mass (kg).
        dv_sensed_mps: ∫ specific force dt since t = 0 (m/s), what a perfect
            accelerometer would accumulate (thrust, then ground reaction once landed).
    """

    t_ns: int
    r_m: Vec3
    v_mps: Vec3
    mass_kg: float
    dv_sensed_mps: Vec3


@dataclass(frozen=True)
class Touchdown:
    """First contact with the terrain (h_AGL ≤ 0).

    Attributes:
        t_ns: contact time (ns).
        r_m: position at contact (m).
        v_mps: velocity just before contact (m/s).
        early_contact: contact came while still above the low gate's altitude
            (z > 30 m): the vehicle flew into terrain before its terminal descent.
    """

    t_ns: int
    r_m: Vec3
    v_mps: Vec3
    early_contact: bool


class Vehicle:
    """The lander's truth state, advanced in integer ns under latent thrust commands.

    Before the first command takes effect the engine holds hover thrust
    (m0·|g|, up). A zero command is read as minimum thrust, up. Once the usable
    propellant is gone the engine stops (``flameout``). At touchdown the
    vehicle stops dead and stays; later commands are ignored.
    """

    def __init__(
        self,
        r_m: Vec3,
        v_mps: Vec3,
        mass_kg: float,
        height_at_m: Callable[[float, float], float],
        *,
        isp_s: float = ISP_S,
        thrust_scale: float = 1.0,
        misalignment_rad: tuple[float, float] = (0.0, 0.0),
        latency_ns: int = COMMAND_LATENCY_NS,
        propellant_kg: float = USABLE_PROPELLANT_KG,
    ) -> None:
        """Start at t = 0.

        Args:
            r_m: initial position (m).
            v_mps: initial velocity (m/s).
            mass_kg: initial (wet) mass (kg).
            height_at_m: terrain height (m) at (x, y) (m).
            isp_s: specific impulse (s).
            thrust_scale: k_T, actual over commanded thrust.
            misalignment_rad: small rotations of the thrust about x then y (rad).
            latency_ns: command latency (ns).
            propellant_kg: usable propellant (kg).
        """
        self._height_at_m = height_at_m
        self._k_t = thrust_scale
        self._exhaust_mps = isp_s * G0_MPS2
        self._rotation = _rotation_xy(*misalignment_rad)
        self.latency_ns = latency_ns
        self._m0_kg = mass_kg
        self._m_empty_kg = mass_kg - propellant_kg
        self._events: list[tuple[int, int, Vec3]] = []
        self._seq = 0
        self._t_ns = 0
        self._base = VehicleState(0, r_m, v_mps, mass_kg, (0.0, 0.0, 0.0))
        self._force_n: Vec3 = (0.0, 0.0, 0.0)
        self._mdot_kgps = 0.0
        self.flameout = False
        self.touchdown: Touchdown | None = None
        self._set_force(self._actual_force((0.0, 0.0, mass_kg * -GRAVITY_MPS2[2])))
        if propellant_kg <= 0.0:
            self._flame_out()

    @property
    def t_ns(self) -> int:
        """Current mission time (ns)."""
        return self._t_ns

    @property
    def propellant_used_kg(self) -> float:
        """Propellant burnt so far (kg)."""
        return self._m0_kg - self.state().mass_kg

    def command(self, t_cmd_ns: int, thrust_n: Sequence[float]) -> None:
        """Queue a thrust command (N, landing frame) published at ``t_cmd_ns``.

        It takes effect at ``t_cmd_ns + latency_ns`` and is held until the next.

        Raises:
            ValueError: the command is non-finite or would take effect before ``t_ns``.
        """
        t_apply_ns = t_cmd_ns + self.latency_ns
        if t_apply_ns < self._t_ns:
            raise ValueError(f"thrust command at {t_cmd_ns} ns takes effect at {t_apply_ns} ns, "
                             f"before the vehicle's time {self._t_ns} ns")
        tx, ty, tz = (float(c) for c in thrust_n)
        if not all(math.isfinite(c) for c in (tx, ty, tz)):
            raise ValueError(f"thrust command at {t_cmd_ns} ns is not finite: {thrust_n}")
        heapq.heappush(self._events, (t_apply_ns, self._seq, self._actual_force((tx, ty, tz))))
        self._seq += 1

    def advance_to(self, t_ns: int) -> None:
        """Advance truth to ``t_ns`` (not before the current time), stopping at touchdown."""
        if t_ns < self._t_ns:
            raise ValueError(f"cannot go back from {self._t_ns} ns to {t_ns} ns")
        while self.touchdown is None:
            b_ns = (self._base.t_ns // SUBSTEP_NS + 1) * SUBSTEP_NS
            if self._events:
                b_ns = min(b_ns, self._events[0][0])
            if self._mdot_kgps > 0.0:
                left_s = (self._base.mass_kg - self._m_empty_kg) / self._mdot_kgps
                b_ns = min(b_ns, self._base.t_ns + max(1, int(left_s * NS_PER_S)))
            if b_ns > t_ns:
                break
            self._move_base(b_ns)
        if self.touchdown is None and t_ns > self._base.t_ns and self._agl_m(self._at(t_ns)) <= 0.0:
            self._land(self._contact_ns(t_ns))
        self._t_ns = t_ns

    def state(self) -> VehicleState:
        """Truth at the current time."""
        return self._at(self._t_ns)

    def agl_m(self) -> float:
        """Height above the terrain below the vehicle now (m)."""
        return self._agl_m(self.state())

    def _actual_force(self, thrust_n: Vec3) -> Vec3:
        """Commanded thrust clipped to the engine's range, then misaligned and scaled."""
        norm = math.sqrt(thrust_n[0] ** 2 + thrust_n[1] ** 2 + thrust_n[2] ** 2)
        if norm == 0.0:
            thrust_n, norm = (0.0, 0.0, THRUST_MIN_N), THRUST_MIN_N
        k = self._k_t * min(max(norm, THRUST_MIN_N), THRUST_MAX_N) / norm
        rot = self._rotation
        return (k * (rot[0] * thrust_n[0] + rot[1] * thrust_n[1] + rot[2] * thrust_n[2]),
                k * (rot[3] * thrust_n[0] + rot[4] * thrust_n[1] + rot[5] * thrust_n[2]),
                k * (rot[6] * thrust_n[0] + rot[7] * thrust_n[1] + rot[8] * thrust_n[2]))

    def _set_force(self, force_n: Vec3) -> None:
        if self.flameout:
            return
        self._force_n = force_n
        norm = math.sqrt(force_n[0] ** 2 + force_n[1] ** 2 + force_n[2] ** 2)
        self._mdot_kgps = norm / self._exhaust_mps

    def _move_base(self, b_ns: int) -> None:
        """Make the state at boundary ``b_ns`` the new base; land or apply due events."""
        state = self._at(b_ns)
        if self._agl_m(state) <= 0.0:
            self._land(self._contact_ns(b_ns))
            return
        self._base = state
        while self._events and self._events[0][0] <= b_ns:
            self._set_force(heapq.heappop(self._events)[2])
        if self._mdot_kgps > 0.0 and state.mass_kg - self._m_empty_kg <= self._mdot_kgps * 1e-9:
            self._flame_out()

    def _flame_out(self) -> None:
        self.flameout = True
        self._force_n, self._mdot_kgps = (0.0, 0.0, 0.0), 0.0

    def _at(self, t_ns: int) -> VehicleState:
        """Closed-form state at ``t_ns`` (within the current segment) from the base."""
        base = self._base
        if t_ns == base.t_ns:
            return base
        if self.touchdown is not None:
            # Landed: at rest; the accelerometer feels the ground reaction -g.
            dt_s = (t_ns - base.t_ns) / NS_PER_S
            sf = tuple(s - g * dt_s for s, g in zip(base.dv_sensed_mps, GRAVITY_MPS2, strict=True))
            return VehicleState(t_ns, base.r_m, base.v_mps, base.mass_kg, _vec(sf))
        dt_s = (t_ns - base.t_ns) / NS_PER_S
        (rx, ry, rz), (vx, vy, vz), m0 = base.r_m, base.v_mps, base.mass_kg
        gx, gy, gz = GRAVITY_MPS2
        q = self._mdot_kgps
        if q > 0.0:
            eps = q * dt_s / m0
            # Δv = (F/m0)·dt·(-log1p(-ε)/ε); Δr = (F/m0)·dt²·φ(ε), φ(ε) = (ε + (1-ε)·log1p(-ε))/ε².
            log_term = -math.log1p(-eps)
            dv_k = dt_s * log_term / eps if eps > 0.0 else dt_s
            if eps < _SERIES_BELOW:
                phi = 0.5 + eps * (1.0 / 6.0 + eps * (1.0 / 12.0 + eps * (1.0 / 20.0)))
            else:
                phi = (eps - (1.0 - eps) * log_term) / (eps * eps)
            dr_k = dt_s * dt_s * phi
        else:
            dv_k = dr_k = 0.0
        fx, fy, fz = (f / m0 for f in self._force_n)
        half_dt2 = 0.5 * dt_s * dt_s
        sx, sy, sz = base.dv_sensed_mps
        return VehicleState(
            t_ns,
            (rx + vx * dt_s + gx * half_dt2 + fx * dr_k,
             ry + vy * dt_s + gy * half_dt2 + fy * dr_k,
             rz + vz * dt_s + gz * half_dt2 + fz * dr_k),
            (vx + gx * dt_s + fx * dv_k, vy + gy * dt_s + fy * dv_k, vz + gz * dt_s + fz * dv_k),
            m0 - q * dt_s,
            (sx + fx * dv_k, sy + fy * dv_k, sz + fz * dv_k),
        )

    def _agl_m(self, state: VehicleState) -> float:
        return state.r_m[2] - self._height_at_m(state.r_m[0], state.r_m[1])

    def _contact_ns(self, hi_ns: int) -> int:
        """First ns in (base, hi] with h_AGL ≤ 0 (bisection; AGL at hi is ≤ 0)."""
        lo_ns = self._base.t_ns
        while hi_ns - lo_ns > 1:
            mid_ns = (lo_ns + hi_ns) // 2
            if self._agl_m(self._at(mid_ns)) <= 0.0:
                hi_ns = mid_ns
            else:
                lo_ns = mid_ns
        return hi_ns

    def _land(self, t_ns: int) -> None:
        """Stop at the contact: record it, cut the engine, absorb the impact impulse."""
        state = self._at(t_ns)
        self.touchdown = Touchdown(t_ns, state.r_m, state.v_mps,
                                   early_contact=state.r_m[2] > LOW_GATE_R_M[2])
        sf = _vec(tuple(s - v for s, v in zip(state.dv_sensed_mps, state.v_mps, strict=True)))
        self._base = VehicleState(t_ns, state.r_m, (0.0, 0.0, 0.0), state.mass_kg, sf)
        self._force_n, self._mdot_kgps = (0.0, 0.0, 0.0), 0.0
        self._events.clear()


def _vec(values: Sequence[float]) -> Vec3:
    return (values[0], values[1], values[2])


def _rotation_xy(about_x_rad: float, about_y_rad: float) -> tuple[float, ...]:
    """Row-major 3×3 rotation R = R_y(about_y)·R_x(about_x)."""
    cx, sx = math.cos(about_x_rad), math.sin(about_x_rad)
    cy, sy = math.cos(about_y_rad), math.sin(about_y_rad)
    return (cy, sy * sx, sy * cx,
            0.0, cx, -sx,
            -sy, cy * sx, cy * cx)
