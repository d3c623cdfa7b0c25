"""LTD-1 onboard guidance: ZEM/ZEV to the low gate, the phase-B PD law, and the command task.

Flight code: numpy and the standard library only, loaded by the runtime by file
path (``guidance.py:zemzev_guidance``, ``guidance.py:Command``). Frames, units
and signals are those of docs/ltd1.md: landing frame (x downrange, y
crossrange, z up, origin at the target), SI units.

Every acceleration returned here is a commanded *specific force* (thrust
acceleration, m/s²): gravity compensation is already in it, so the thrust is
simply mass times it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = Mapping[str, npt.NDArray[Any]]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Vector = Sequence[float] | npt.NDArray[Any]

GRAVITY = np.array([0.0, 0.0, -1.62])  # m/s², lunar surface gravity
G0 = 9.80665  # m/s², standard gravity (Isp conversion)
LOW_GATE_R = (0.0, 0.0, 30.0)  # m
LOW_GATE_V = (0.0, 0.0, -1.5)  # m/s
T_GO_MIN_S = 2.0
# Time weight of the free-final-time cost J = GAMMA·t_go + ½∫‖a‖²dt (m²/s⁴). From the nominal
# high gate, 0 (pure energy optimum) flies phase A in 71 s and lands after 91 s on 68 kg;
# 1.0 gives 64 s of phase A, 84 s and 64 kg in all (the LTD-1 nominal), thrust 1000-4550 N.
GAMMA = 1.0
PHASE_B_KP = 0.1  # 1/s², horizontal position gain
PHASE_B_KV_XY = 0.6  # 1/s, horizontal velocity gain
PHASE_B_KV_Z = 0.8  # 1/s, vertical velocity gain
PHASE_B_DESCENT_MPS = 1.5


def time_to_go(dr: F64, v: F64, v_f: F64, gamma: float = GAMMA,
               t_go_min: float = T_GO_MIN_S) -> float:
    """Optimal time to go (s) of the free-final-time ZEM/ZEV problem, unfloored.

    Minimising J = Γ·t + ½∫‖a‖²dt (a: thrust acceleration, constant gravity g)
    over t gives the quartic
    (Γ + ½‖g‖²)t⁴ − 2(‖v‖² + v·v_f + ‖v_f‖²)t² + 12 Δr·(v + v_f)t − 18‖Δr‖² = 0,
    Δr = r_f − r (the Hamiltonian −Γ at t = 0, multiplied by t⁴; it reduces to
    D'Souza's quartic for v_f = 0). The quartic is t⁴·dJ/dt up to a positive
    factor: its constant term is negative and its leading coefficient positive,
    so its smallest positive root is J's first minimum. That root is returned:
    it decreases continuously along the flight, where a global-minimum choice
    can jump between branches in the last metres. Near the gate the small
    roots leave the positive real axis: when the vehicle arrives with a small
    residual error (the gate more than about 30° off its velocity) the two
    smallest merge and turn complex; at the gate they are 0; past it they are
    negative. Any root of modulus below ``t_go_min`` therefore counts, as its
    real part floored at 0, so t_go goes on to 0 (and stays there) instead of
    jumping to the next minimum seconds later, which would command a 5 m/s²
    braking spike and a climb back to the gate. Roots far from 0 count only if
    positive and real.

    Args:
        dr: target position minus current position (m).
        v: current velocity (m/s).
        v_f: target velocity (m/s).
        gamma: time weight Γ (m²/s⁴).
        t_go_min: roots of smaller modulus count, as their real part floored at 0 (s).

    Returns:
        t_go in s (0.0 when the state is already at the target; NaN for a
        non-finite state, so that the command is NaN and the runtime's guard
        sees it).
    """
    a4 = gamma + 0.5 * float(GRAVITY @ GRAVITY)
    a2 = -2.0 * float(v @ v + v @ v_f + v_f @ v_f)
    a1 = 12.0 * float(dr @ (v + v_f))
    a0 = -18.0 * float(dr @ dr)
    if not math.isfinite(a2 + a1 + a0):
        return math.nan
    roots = np.roots([a4, 0.0, a2, a1, a0])
    positive_real = roots.real[(roots.real > 0.0) & (np.abs(roots.imag) <= 1e-9 * np.abs(roots))]
    near_zero = np.maximum(roots.real[np.abs(roots) < t_go_min], 0.0)
    candidates = np.concatenate([positive_real, near_zero])
    return float(candidates.min()) if candidates.size else 0.0


def zem_zev_accel(r: F64, v: F64, r_f: F64, v_f: F64, gamma: float = GAMMA,
                  t_go_min: float = T_GO_MIN_S) -> F64:
    """ZEM/ZEV feedback law in float64 (the body of ``zem_zev``).

    a = 6·ZEM/t² − 2·ZEV/t with ZEM = r_f − (r + v·t + ½g·t²) and
    ZEV = v_f − (v + g·t), which expands to 6Δr/t² − (4v + 2v_f)/t − g.

    The floor: when the quartic's t_go is below ``t_go_min``, t = t_go_min and
    the aim point moves on along the target velocity, r_f + v_f·(t_go_min −
    t_go): where the gate's trajectory will be at the floored time. A fixed aim
    with a floored t has an equilibrium short of the gate (hovering
    v_f·t_go_min/3 = 1 m above it for 1.5 m/s and 2 s), so the gate would never
    be crossed; the moving aim keeps the approach going through it. The price
    is a lag: the state at the gate is off by about 0.15 m/s per second of
    floor (0.3 m/s for 2 s) instead of converging exactly.

    Args:
        r: position (m).
        v: velocity (m/s).
        r_f: target position (m).
        v_f: target velocity (m/s).
        gamma: time weight of t_go (m²/s⁴).
        t_go_min: floor of t_go (s).

    Returns:
        Commanded specific force (m/s²), shape [3].
    """
    dr = r_f - r
    t = time_to_go(dr, v, v_f, gamma, t_go_min)
    if t < t_go_min:
        dr = dr + v_f * (t_go_min - t)
        t = t_go_min
    result: F64 = 6.0 * dr / (t * t) - (4.0 * v + 2.0 * v_f) / t - GRAVITY
    return result


def zem_zev(r: Vector, v: Vector, r_f: Vector = LOW_GATE_R, v_f: Vector = LOW_GATE_V,
            gamma: float = GAMMA, t_go_min: float = T_GO_MIN_S) -> F32:
    """ZEM/ZEV guidance to the low gate, t_go from the quartic floored at ``t_go_min``.

    Args:
        r: position (m), landing frame.
        v: velocity (m/s).
        r_f: target position (m), default the low gate (0, 0, 30).
        v_f: target velocity (m/s), default (0, 0, −1.5).
        gamma: time weight of t_go (m²/s⁴).
        t_go_min: floor of t_go (s).

    Returns:
        Commanded specific force (m/s², gravity compensation included), float32 [1, 3].
    """
    accel = zem_zev_accel(_vec(r), _vec(v), _vec(r_f), _vec(v_f), gamma, t_go_min)
    return accel.astype(np.float32).reshape(1, 3)


def phase_b_accel(r: F64, v: F64) -> F64:
    """Phase-B PD law in float64 (the body of ``phase_b``), specific force (m/s²), [3]."""
    accel: F64 = np.array([
        -PHASE_B_KV_XY * v[0] - PHASE_B_KP * r[0],
        -PHASE_B_KV_XY * v[1] - PHASE_B_KP * r[1],
        -PHASE_B_KV_Z * (v[2] + PHASE_B_DESCENT_MPS),
    ]) - GRAVITY
    return accel


def phase_b(r: Vector, v: Vector) -> F32:
    """Phase B (30 m to touchdown): null horizontal position and velocity, descend at 1.5 m/s.

    a = [−0.6·v_xy − 0.1·r_xy, −0.8·(v_z + 1.5)] − g.

    Args:
        r: position (m).
        v: velocity (m/s).

    Returns:
        Commanded specific force (m/s²), float32 [1, 3].
    """
    return phase_b_accel(_vec(r), _vec(v)).astype(np.float32).reshape(1, 3)


def zemzev_guidance(inputs: Arrays) -> dict[str, F32]:
    """Function task: ZEM/ZEV from the navigation state, the G-Net's drop-in fallback.

    Ports: ``state`` = nav.rv (float32 [1, 6]: r m, v m/s) →
    ``accel_cmd`` = guidance.accel_cmd (float32 [1, 3], specific force m/s²).
    """
    rv = np.asarray(inputs["state"], dtype=np.float64).reshape(6)
    return {"accel_cmd": zem_zev(rv[:3], rv[3:])}


def _vec(value: Vector) -> F64:
    """A float64 copy of a 3-vector."""
    return np.array(value, dtype=np.float64).reshape(3)


class Command:
    """Runtime assurance, mode manager and thrust allocation (factory task).

    Ports: ``accel_cmd`` = guidance.accel_cmd (float32 [1, 3], m/s²), ``state`` =
    nav.state (float64 [1, 12]) → ``thrust`` = thrust.cmd (float32 [3], N),
    ``status`` = rta.status (float32 [1, 3]: learned command in use 1/0,
    deviation from ZEM/ZEV in m/s² (−1 when the command is non-finite, 0 when
    not monitored), phase 0 = A / 1 = B).

    Behaviour, per call (one call per ``period_ms``):

    * Before the navigation filter is initialised (nav.state all zeros) the
      vehicle is commanded to hold its velocity: vertical thrust m·1.62 N. So
      is it if nav.state is ever non-finite (no navigation to guide on).
    * Phase B is entered, latched, once the estimated height above the target
      plane r_z drops below ``phase_b_altitude_m``. r_z rather than AGL: the
      low gate is defined in the target frame, above the target r_z equals AGL,
      and r_z does not jump with the terrain (crater rims) under the track.
    * Phase A: ZEM/ZEV is computed here from nav.state (the same state the
      guidance task saw, one LET stage earlier). With ``learned`` true the
      incoming command is flown unless it is non-finite (latch at once) or
      deviates from ZEM/ZEV by more than ``max_deviation`` for more than
      ``max_deviation_s`` (consecutive calls). The latch holds for the rest of
      the descent: there is no reset; a new descent builds a new task. With
      ``learned`` false (classical config, the incoming command is ZEM/ZEV
      already) the task flies its own ZEM/ZEV and reports the deviation of the
      incoming one as a cross-check.
    * Allocation: thrust = m_est·a, magnitude clipped to [thrust_min_n,
      thrust_max_n] keeping its direction; m_est starts at the wet mass and
      loses the propellant the commanded thrust burns over one period (Isp),
      floored at the dry mass.

    Args:
        learned: whether the incoming command comes from the learned policy.
        wet_mass_kg: initial mass estimate (kg).
        dry_mass_kg: floor of the mass estimate (kg).
        isp_s: specific impulse (s).
        period_ms: the task period (ms): mass depletion and deviation timing.
        max_deviation: deviation threshold (m/s²).
        max_deviation_s: how long the deviation may last before latching (s).
        phase_b_altitude_m: phase-B switch height (m).
        thrust_min_n: lowest thrust magnitude (N).
        thrust_max_n: highest thrust magnitude (N).
        gamma: time weight of the ZEM/ZEV t_go (m²/s⁴).
    """

    def __init__(self, learned: bool = True, wet_mass_kg: float = 1200.0,
                 dry_mass_kg: float = 1080.0, isp_s: float = 311.0, period_ms: float = 20.0,
                 max_deviation: float = 0.5, max_deviation_s: float = 0.5,
                 phase_b_altitude_m: float = 30.0, thrust_min_n: float = 1000.0,
                 thrust_max_n: float = 5000.0, gamma: float = GAMMA) -> None:
        self._learned = bool(learned)
        self._mass_kg = float(wet_mass_kg)
        self._dry_mass_kg = float(dry_mass_kg)
        self._period_s = period_ms / 1000.0
        self._kg_per_newton = self._period_s / (isp_s * G0)  # burnt in one period
        self._max_deviation = float(max_deviation)
        self._max_over_calls = round(max_deviation_s / self._period_s)
        self._phase_b_altitude_m = float(phase_b_altitude_m)
        self._thrust_min_n = float(thrust_min_n)
        self._thrust_max_n = float(thrust_max_n)
        self._gamma = float(gamma)
        self._r_f = np.array(LOW_GATE_R)
        self._v_f = np.array(LOW_GATE_V)
        self._latched = False
        self._phase_b = False
        self._over_calls = 0

    @property
    def mass_kg(self) -> float:
        """The current mass estimate (kg)."""
        return self._mass_kg

    def run(self, inputs: Arrays) -> dict[str, F32]:
        """One command cycle: mode, assurance, allocation."""
        cmd = np.asarray(inputs["accel_cmd"], dtype=np.float64).reshape(3)
        state = np.asarray(inputs["state"], dtype=np.float64).reshape(12)
        learned_in_use, deviation = False, 0.0
        if not state.any() or not np.isfinite(state).all():
            accel = -GRAVITY
        else:
            r, v = state[0:3], state[3:6]
            self._phase_b = self._phase_b or bool(r[2] < self._phase_b_altitude_m)
            if self._phase_b:
                accel = phase_b_accel(r, v)
            else:
                reference = zem_zev_accel(r, v, self._r_f, self._v_f, self._gamma)
                deviation = self._monitor(cmd, reference)
                learned_in_use = self._learned and not self._latched
                accel = cmd if learned_in_use else reference
        status = np.array([[float(learned_in_use), deviation, float(self._phase_b)]],
                          dtype=np.float32)
        return {"thrust": self._allocate(accel), "status": status}

    def warmup(self, inputs: Arrays) -> None:
        """Run a copy on ``inputs``: exercises the code without touching this task's state."""
        copy.deepcopy(self).run(inputs)

    def describe(self) -> dict[str, str]:
        """Kind, configuration and assurance state."""
        return {"kind": "command", "learned": str(self._learned),
                "latched": str(self._latched), "phase": "B" if self._phase_b else "A"}

    def _monitor(self, cmd: F64, reference: F64) -> float:
        """Update the latch from one command; return the deviation (m/s², −1 if non-finite)."""
        if not np.isfinite(cmd).all():
            self._latched = self._latched or self._learned
            return -1.0
        diff = cmd - reference
        deviation = math.sqrt(float(diff @ diff))
        self._over_calls = self._over_calls + 1 if deviation > self._max_deviation else 0
        if self._learned and self._over_calls > self._max_over_calls:
            self._latched = True
        return deviation

    def _allocate(self, accel: F64) -> F32:
        """Thrust (N) for a specific force (m/s²), clipped in magnitude; burns the mass."""
        thrust = self._mass_kg * accel
        norm = math.sqrt(float(thrust @ thrust))
        if norm < 1e-9:
            thrust, norm = np.array([0.0, 0.0, 1.0]), 1.0
        magnitude = min(max(norm, self._thrust_min_n), self._thrust_max_n)
        self._mass_kg = max(self._mass_kg - magnitude * self._kg_per_newton, self._dry_mass_kg)
        result: F32 = (thrust * (magnitude / norm)).astype(np.float32)
        return result
