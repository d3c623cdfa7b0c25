"""LTD-1 onboard navigation: the map product, the 9-state filter, TRN preprocessing and matching.

Flight code: numpy and the standard library only, loaded by the runtime by file
path (``navigation.py:NavFilter``, ``:TrnPrep``, ``:CorrelationTrn``). Frames,
units, signals, camera geometry and the map product are those of
docs/ltd1.md: landing frame (x downrange, y crossrange, z up, origin at the
target on the terrain), SI units, integer ns of mission time.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = Mapping[str, npt.NDArray[Any]]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

GRAVITY = np.array([0.0, 0.0, -1.62])  # m/s²
MILLI_G = 9.80665e-3  # m/s²
NS = 1e-9  # s per ns
PATCH_PX = 64  # TRN patch and map crop side
CAMERA_PX = 256  # camera image side; 90° FOV, so the footprint is 2·AGL wide
CAPTURE_MIN_PX = 32  # a scale s is usable for AGL in [32·s, 128·s] (docs/ltd1.md)
CAPTURE_MAX_PX = 128


# --- the onboard map product ------------------------------------------------------------------


class OnboardMap:
    """The verified onboard map: shaded-relief pyramid and DEM (see docs/ltd1.md).

    Args:
        levels: scale (m/px) → (image [rows, cols], x_min, y_min): the first
            pixel's corner, so pixel (i, j) centre is (x_min + (j + 0.5)·s,
            y_min + (i + 0.5)·s).
        dem: terrain height (m) [rows, cols].
        dem_scale: DEM pixel size (m).
        dem_origin: (x_min, y_min) of the DEM's first pixel corner (m).
    """

    def __init__(self, levels: Mapping[float, tuple[F32, float, float]], dem: F32,
                 dem_scale: float, dem_origin: tuple[float, float]) -> None:
        self._levels = dict(levels)
        self._dem = dem
        self._dem_scale = dem_scale
        self._dem_origin = dem_origin
        self.scales = tuple(sorted(self._levels, reverse=True))

    @property
    def dem_scale(self) -> float:
        """DEM pixel size (m)."""
        return self._dem_scale

    def crop(self, scale: float, x: float, y: float, size: int = PATCH_PX) -> F32:
        """A map crop centred on (x, y), bilinear-sampled on the level's own grid.

        Crop pixel (i, j) centre is (x + (j + 0.5 − size/2)·s, y + (i + 0.5 − size/2)·s):
        rows along +y, columns along +x. Samples beyond the map repeat its edge.

        Args:
            scale: map level (m/px), one of ``scales``.
            x: crop centre x (m).
            y: crop centre y (m).
            size: crop side (px).

        Returns:
            float32 [size, size], zero mean and unit std (all zeros if flat).
        """
        image, x_min, y_min = self._levels[float(scale)]
        u = (x - x_min) / scale - size / 2  # continuous column of the first sample
        v = (y - y_min) / scale - size / 2
        j0, i0 = math.floor(u), math.floor(v)
        fu, fv = u - j0, v - i0
        rows = np.clip(np.arange(i0, i0 + size + 1), 0, image.shape[0] - 1)
        cols = np.clip(np.arange(j0, j0 + size + 1), 0, image.shape[1] - 1)
        block = image[np.ix_(rows, cols)].astype(np.float64)
        top = (1.0 - fu) * block[:-1, :-1] + fu * block[:-1, 1:]
        bottom = (1.0 - fu) * block[1:, :-1] + fu * block[1:, 1:]
        return normalise((1.0 - fv) * top + fv * bottom)

    def dem_height(self, x: float, y: float) -> float:
        """Terrain height (m) at (x, y), bilinear; the DEM edge value beyond it."""
        u = (x - self._dem_origin[0]) / self._dem_scale - 0.5
        v = (y - self._dem_origin[1]) / self._dem_scale - 0.5
        return _bilinear(self._dem, u, v)

    def dem_slope(self, x: float, y: float, baseline: float) -> tuple[float, float]:
        """Terrain slope (dh/dx, dh/dy) by central differences over ±``baseline`` m."""
        dhdx = self.dem_height(x + baseline, y) - self.dem_height(x - baseline, y)
        dhdy = self.dem_height(x, y + baseline) - self.dem_height(x, y - baseline)
        return dhdx / (2.0 * baseline), dhdy / (2.0 * baseline)


def _bilinear(image: npt.NDArray[Any], u: float, v: float) -> float:
    """Bilinear sample at continuous (column u, row v), pixel centres at integers, clamped."""
    rows, cols = image.shape
    u = min(max(u, 0.0), cols - 1.0)
    v = min(max(v, 0.0), rows - 1.0)
    j, i = min(int(u), cols - 2), min(int(v), rows - 2)
    fu, fv = u - j, v - i
    top = (1.0 - fu) * image.item(i, j) + fu * image.item(i, j + 1)
    bottom = (1.0 - fu) * image.item(i + 1, j) + fu * image.item(i + 1, j + 1)
    return float((1.0 - fv) * top + fv * bottom)


def normalise(image: npt.NDArray[Any]) -> F32:
    """Zero-mean, unit-std float32 copy; all zeros when the image is flat."""
    data = np.asarray(image, dtype=np.float64)
    std = float(data.std())
    if not std > 1e-9:
        return np.zeros(data.shape, dtype=np.float32)
    result: F32 = ((data - data.mean()) / std).astype(np.float32)
    return result


def load_map(path: str | Path, sha256: str) -> OnboardMap:
    """Read the onboard map .npz after checking its SHA-256; the file is read once.

    The hash is computed on the bytes read, and the arrays are parsed from
    those same bytes, so what was verified is what is used.

    Args:
        path: the map file (relative paths resolve from the working directory).
        sha256: the expected SHA-256, hex.

    Returns:
        The map.

    Raises:
        ValueError: the file's hash differs from ``sha256``, or a level is missing.
    """
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.strip().lower():
        raise ValueError(f"{path}: SHA-256 is {actual}, the config expects {sha256}")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    levels = {}
    for scale in np.asarray(arrays["scales"], dtype=np.float64).reshape(-1):
        s = float(scale)
        image = _level(arrays, "img", s).astype(np.float32)
        x_min, y_min = _level(arrays, "origin", s).astype(np.float64).reshape(2)
        levels[s] = (image, float(x_min), float(y_min))
    dem_origin = np.asarray(arrays["dem_origin"], dtype=np.float64).reshape(2)
    return OnboardMap(levels, np.asarray(arrays["dem"], dtype=np.float32),
                      float(np.asarray(arrays["dem_scale"]).item()),
                      (float(dem_origin[0]), float(dem_origin[1])))


def _level(arrays: Mapping[str, npt.NDArray[Any]], prefix: str, scale: float) -> npt.NDArray[Any]:
    """The ``<prefix>_<s>`` array of a map level (``img_40`` or ``img_40.0``)."""
    for name in (f"{prefix}_{scale:g}", f"{prefix}_{scale}"):
        if name in arrays:
            return arrays[name]
    raise ValueError(f"the map has no {prefix}_{scale:g} for its scale {scale:g} m/px")


# --- navigation filter ------------------------------------------------------------------------


class NavFilter:
    """9-state extended Kalman filter: position r, velocity v, accelerometer bias b.

    Ports in: ``handover`` nav.handover (float64 [6]: r m, v m/s), ``handover_t``,
    ``dv`` imu.dv (float64 [3], accumulated specific-force Δv since t = 0, m/s),
    ``dv_t``, ``alt`` altimeter.range (float32 [1], m), ``alt_t``, ``fix``
    trn.fix (float32 [1, 3]: Δx, Δy px, confidence), ``fix_t``, ``meta``
    trn.meta (float64 [1, 4]: t_exp ns, prior x, prior y m, scale m/px); every
    ``*_t`` is the ``signal@t_ns`` int64 [1].
    Ports out: ``state`` nav.state (float64 [1, 12]: r, v, b, AGL estimate,
    σx, σy) and ``rv`` nav.rv (float32 [1, 6]: r, v); all zeros until the
    handover has been received.

    * Start: from the handover, with σ = ``init_sigma_m``, ``init_sigma_mps``
      and ``bias_sigma_mg``. The handover is measured at t = 0, so its
      ``@t_ns`` is 0 like an absent value: it counts as received when it is
      not all zeros. imu.dv is accumulated from t = 0, so its reference is 0
      at t = 0 (a handover stamped later takes the current imu.dv as its
      reference).
    * Propagate at each new imu.dv (its time tag is the filter's epoch):
      a = Δ(dv)/Δt − b + g over the interval, process noise from the
      accelerometer white noise ``accel_noise_ug`` µg/√Hz; b is constant.
    * Altimeter, at each new time tag: range = r_z − h(r_x, r_y) at the
      measurement instant (back-extrapolated from the filter's epoch with v),
      h from the DEM. H carries the DEM slope, taken over a baseline equal to
      the horizontal σ (at least one DEM pixel, at most 250 m): the slope the
      linearisation needs is the one over the region the vehicle may be in,
      not the local crater wall. The unmodelled rest of the terrain within
      that region adds (``terrain_roughness``·σ_h)² to σ² = max(0.5,
      0.005·range)².
      A range whose innovation fails the χ² gate (1 dof, ``alt_gate_chi2``) is
      not applied (a stuck or biased altimeter, a noise burst).
    * TRN fix, at each new ``fix_t`` whose meta scale is positive, confidence at
      least ``min_confidence`` and exposure within the history: measured
      horizontal position at exposure z = prior + Δ·scale, σ =
      ``fix_sigma_px``·scale per axis. The fix refers to the exposure, not the
      arrival: the filter keeps a history of its horizontal position estimates
      (one per propagation, ``history_len`` deep) and every update also
      corrects that history (as a shift δr − δv·τ − ½δb·τ², τ the age of the
      entry), so the history is what the current estimate says the past was.
      Innovation = z − history(t_exp) (interpolated); the update is applied to
      the current state with the Jacobian of r(t_exp) = r − v·τ + ½(f − b +
      g)·τ² (τ = epoch − t_exp): H = [I, −τI, −½τ²I]. The approximation:
      process noise between exposure and now (q·τ³/3, under 1e-6 m² for τ <
      1 s) is neglected, i.e. the position covariance at exposure is the
      current one mapped back through the deterministic dynamics. The matching
      trn.meta is the one current when the fix arrives: trn_prep publishes it
      with the input the fix is computed from, and the fix (trn deadline
      200 ms) arrives before trn_prep's next release (500 ms period).
    * χ² gate (2 dof, ``gate_chi2``); after ``max_rejections`` rejections in a
      row the horizontal position σ is raised to at least ``reacquire_sigma_m``
      so that the next fixes re-acquire: no sensor is ever latched out.

    Deterministic: no randomness, no clock; the output is a function of the inputs.

    Args:
        map_file: the onboard map .npz, relative to ``mission_dir``.
        map_sha256: its expected SHA-256.
        accel_noise_ug: accelerometer white noise (µg/√Hz).
        init_sigma_m: initial position σ per axis (m).
        init_sigma_mps: initial velocity σ per axis (m/s).
        bias_sigma_mg: initial accelerometer bias σ (mg).
        fix_sigma_px: TRN fix σ per axis (map pixels).
        min_confidence: fixes below this confidence are ignored.
        gate_chi2: χ² gate of a fix (2 dof).
        max_rejections: consecutive rejections that trigger re-acquisition.
        reacquire_sigma_m: horizontal σ after re-acquisition (m).
        terrain_roughness: RMS terrain slope not captured by the DEM-slope
            linearisation (dimensionless).
        history_len: propagations kept in the position history.
        alt_gate_chi2: χ² gate of a range (1 dof; 36 = 6σ; nominal flights stay
            under 17): a range outside it is not applied and counted
            (``ranges_rejected``), so a stuck or biased altimeter is detected and
            the filter coasts on the IMU; a range back inside the gate is used again.
        mission_dir: the mission file's folder (given by the runtime).
    """

    def __init__(self, map_file: str, map_sha256: str, accel_noise_ug: float = 100.0,
                 init_sigma_m: Sequence[float] = (100.0, 100.0, 10.0),
                 init_sigma_mps: float = 0.3, bias_sigma_mg: float = 1.0,
                 fix_sigma_px: float = 0.75, min_confidence: float = 0.25,
                 gate_chi2: float = 13.8, max_rejections: int = 4,
                 reacquire_sigma_m: float = 150.0, terrain_roughness: float = 0.05,
                 history_len: int = 64, alt_gate_chi2: float = 36.0,
                 mission_dir: str | Path = ".") -> None:
        self._map = load_map(Path(mission_dir, map_file), map_sha256)
        self._sha256 = map_sha256
        self._psd = (accel_noise_ug * 1e-6 * 9.80665) ** 2  # (m/s²)²/Hz
        self._p0 = np.diag(np.concatenate([np.asarray(init_sigma_m, dtype=np.float64),
                                           np.full(3, init_sigma_mps),
                                           np.full(3, bias_sigma_mg * MILLI_G)]) ** 2)
        self._fix_sigma_px = fix_sigma_px
        self._min_confidence = min_confidence
        self._gate_chi2 = gate_chi2
        self._max_rejections = max_rejections
        self._reacquire_var = reacquire_sigma_m**2
        self._roughness = terrain_roughness
        self._alt_gate_chi2 = alt_gate_chi2
        self._x = np.zeros(9)
        self._p = self._p0.copy()
        self._ready = False
        self._t_ns = 0
        self._dv_ref = np.zeros(3)
        self._last_alt_t = -1  # a range may be measured at t = 0
        self._last_fix_t = 0  # a fix is never published at t = 0
        self._rejections = 0
        self._counts = {"fixes_accepted": 0, "fixes_rejected": 0, "fixes_ignored": 0,
                        "reacquisitions": 0, "ranges_rejected": 0}
        self._hist_t = np.zeros(history_len, dtype=np.int64)
        self._hist_xy = np.zeros((history_len, 2))
        self._hist_n = 0
        self._transition_dt = -1.0
        self._f = np.eye(9)
        self._q = np.zeros((9, 9))

    @property
    def covariance(self) -> F64:
        """A copy of the 9 × 9 state covariance (m, m/s, m/s²)."""
        covariance: F64 = self._p.copy()
        return covariance

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
        """One filter cycle: start, propagate to the latest Δv, altimeter and TRN updates."""
        if not self._ready and not self._start(inputs):
            return {"state": np.zeros((1, 12)), "rv": np.zeros((1, 6), dtype=np.float32)}
        self._propagate(inputs["dv"], int(inputs["dv_t"][0]))
        self._altimeter(float(inputs["alt"][0]), int(inputs["alt_t"][0]))
        self._trn(inputs["fix"], int(inputs["fix_t"][0]), inputs["meta"])
        return self._outputs()

    def warmup(self, inputs: Arrays) -> None:
        """Exercise every code path once before READY; this filter's state is untouched.

        A copy (sharing the read-only map) runs on ``inputs``, another on a
        synthetic handover, Δv, altimeter range and TRN fix.
        """
        memo = {id(self._map): self._map}
        copy.deepcopy(self, memo).run(inputs)
        twin = copy.deepcopy(self, memo)
        ms = 1_000_000
        synthetic = {
            "handover": np.array([0.0, 0.0, 2000.0, 15.0, 0.0, -30.0]),
            "handover_t": np.zeros(1, dtype=np.int64),
            "dv": np.array([0.0, 0.0, 0.05]), "dv_t": np.array([20 * ms]),
            "alt": np.array([2000.0], dtype=np.float32), "alt_t": np.array([10 * ms]),
            "fix": np.array([[0.0, 0.0, 1.0]], dtype=np.float32), "fix_t": np.array([20 * ms]),
            "meta": np.array([[10.0 * ms, 0.0, 0.0, self._map.scales[0]]]),
        }
        twin.run(synthetic)

    def describe(self) -> dict[str, str]:
        """Kind, map hash and fix statistics."""
        facts = {"kind": "nav-filter", "map_sha256": self._sha256, "ready": str(self._ready)}
        facts.update({name: str(count) for name, count in self._counts.items()})
        return facts

    # -- start and propagation --

    def _start(self, inputs: Arrays) -> bool:
        """Initialise from the handover if it has arrived; report whether it has."""
        handover = np.asarray(inputs["handover"], dtype=np.float64).reshape(6)
        if not handover.any():
            return False
        handover_t = int(inputs["handover_t"][0])
        self._x[:6] = handover
        self._x[6:] = 0.0
        self._p = self._p0.copy()
        if handover_t == 0:
            self._t_ns, self._dv_ref = 0, np.zeros(3)
        else:
            self._t_ns = handover_t
            self._dv_ref = np.array(inputs["dv"], dtype=np.float64).reshape(3)
        self._ready = True
        self._push_history()
        return True

    def _propagate(self, dv: npt.NDArray[Any], dv_t: int) -> None:
        """Propagate the state and covariance to the epoch of a newer Δv."""
        if dv_t <= self._t_ns:
            return
        dt = (dv_t - self._t_ns) * NS
        dv_now = np.array(dv, dtype=np.float64).reshape(3)
        x = self._x
        dvel = dv_now - self._dv_ref + (GRAVITY - x[6:9]) * dt
        x[0:3] += (x[3:6] + 0.5 * dvel) * dt
        x[3:6] += dvel
        f, q = self._transition(dt)
        self._p = f @ self._p @ f.T + q
        self._t_ns = dv_t
        self._dv_ref = dv_now
        self._push_history()

    def _transition(self, dt: float) -> tuple[F64, F64]:
        """State transition and process noise over dt seconds (cached for a repeated dt)."""
        if dt != self._transition_dt:
            f = np.eye(9)
            q = np.zeros((9, 9))
            for k in range(3):
                f[k, 3 + k] = dt
                f[k, 6 + k] = -0.5 * dt * dt
                f[3 + k, 6 + k] = -dt
                q[k, k] = self._psd * dt**3 / 3.0
                q[k, 3 + k] = q[3 + k, k] = self._psd * dt**2 / 2.0
                q[3 + k, 3 + k] = self._psd * dt
            self._f, self._q, self._transition_dt = f, q, dt
        return self._f, self._q

    # -- position history (for late fixes) --

    def _push_history(self) -> None:
        """Append the current horizontal position at the filter's epoch."""
        n = self._hist_n
        if n == len(self._hist_t):
            self._hist_t[:-1] = self._hist_t[1:]
            self._hist_xy[:-1] = self._hist_xy[1:]
            n -= 1
        self._hist_t[n] = self._t_ns
        self._hist_xy[n] = self._x[0:2]
        self._hist_n = n + 1

    def _position_at(self, t_ns: int) -> F64 | None:
        """Horizontal position estimate at ``t_ns``; None if older than the history."""
        n = self._hist_n
        times = self._hist_t[:n]
        if t_ns < times[0]:
            return None
        if t_ns >= self._t_ns:
            result: F64 = self._x[0:2] + self._x[3:5] * ((t_ns - self._t_ns) * NS)
            return result
        return np.array([np.interp(t_ns, times, self._hist_xy[:n, 0]),
                         np.interp(t_ns, times, self._hist_xy[:n, 1])])

    def _correct_history(self, dx: F64) -> None:
        """Shift the history by what a state correction dx says about the past."""
        n = self._hist_n
        age = (self._t_ns - self._hist_t[:n]) * NS
        self._hist_xy[:n] += dx[0:2] - age[:, None] * (dx[3:5] + 0.5 * age[:, None] * dx[6:8])

    # -- measurement updates --

    def _apply(self, gain: F64, pht: F64, innovation: F64) -> None:
        """Apply a Kalman update: gain K [9, m], P·Hᵀ [9, m], innovation [m]."""
        dx = gain @ innovation
        self._x += dx
        p = self._p - gain @ pht.T
        self._p = 0.5 * (p + p.T)
        self._correct_history(dx)

    def _altimeter(self, rng: float, t_ns: int) -> None:
        """Altimeter update when a new range has arrived."""
        if t_ns == self._last_alt_t or not rng > 0.0:
            return
        self._last_alt_t = t_ns
        x, p = self._x, self._p
        lag = (self._t_ns - t_ns) * NS  # epoch − measurement instant (s)
        px, py = x[0] - x[3] * lag, x[1] - x[4] * lag
        var_h = 0.5 * (p[0, 0] + p[1, 1])
        baseline = min(max(math.sqrt(var_h), self._map.dem_scale), 250.0)
        sx, sy = self._map.dem_slope(px, py, baseline)
        predicted = x[2] - x[5] * lag - self._map.dem_height(px, py)
        h = np.array([-sx, -sy, 1.0, sx * lag, sy * lag, -lag, 0.0, 0.0, 0.0])
        pht = p @ h
        s = float(h @ pht) + max(0.5, 0.005 * rng) ** 2 + self._roughness**2 * var_h
        innovation = rng - predicted
        if innovation * innovation / s > self._alt_gate_chi2:
            self._counts["ranges_rejected"] += 1
            return
        self._apply((pht / s).reshape(9, 1), pht.reshape(9, 1), np.array([innovation]))

    def _trn(self, fix: npt.NDArray[Any], fix_t: int, meta: npt.NDArray[Any]) -> None:
        """TRN update when a new fix has arrived: usable, gated, applied at its exposure."""
        if fix_t == self._last_fix_t:
            return
        self._last_fix_t = fix_t
        dx_px, dy_px, confidence = np.asarray(fix, dtype=np.float64).reshape(3).tolist()
        t_exp, prior_x, prior_y, scale = np.asarray(meta, dtype=np.float64).reshape(4).tolist()
        usable = (scale > 0.0 and confidence >= self._min_confidence
                  and math.isfinite(dx_px) and math.isfinite(dy_px))
        estimate = self._position_at(int(t_exp)) if usable else None
        if estimate is None:
            self._counts["fixes_ignored"] += 1
            return
        innovation = np.array([prior_x + dx_px * scale, prior_y + dy_px * scale]) - estimate
        tau = (self._t_ns - int(t_exp)) * NS
        h = np.zeros((2, 9))
        h[0, 0] = h[1, 1] = 1.0
        h[0, 3] = h[1, 4] = -tau
        h[0, 6] = h[1, 7] = -0.5 * tau * tau
        pht = self._p @ h.T
        s = h @ pht
        var = (self._fix_sigma_px * scale) ** 2
        det = (s[0, 0] + var) * (s[1, 1] + var) - s[0, 1] * s[1, 0]
        s_inv = np.array([[s[1, 1] + var, -s[0, 1]], [-s[1, 0], s[0, 0] + var]]) / det
        if float(innovation @ s_inv @ innovation) > self._gate_chi2:
            self._reject()
            return
        self._rejections = 0
        self._counts["fixes_accepted"] += 1
        self._apply(pht @ s_inv, pht, innovation)

    def _reject(self) -> None:
        """Count a gated fix; after too many in a row, widen the horizontal σ to re-acquire."""
        self._counts["fixes_rejected"] += 1
        self._rejections += 1
        if self._rejections < self._max_rejections:
            return
        self._rejections = 0
        self._counts["reacquisitions"] += 1
        for k in (0, 1):
            self._p[k, k] += max(0.0, self._reacquire_var - self._p[k, k])

    def _outputs(self) -> dict[str, npt.NDArray[Any]]:
        """nav.state and nav.rv from the current estimate."""
        x = self._x
        state = np.empty((1, 12))
        state[0, :9] = x
        state[0, 9] = x[2] - self._map.dem_height(x[0], x[1])
        state[0, 10] = math.sqrt(self._p[0, 0])
        state[0, 11] = math.sqrt(self._p[1, 1])
        return {"state": state, "rv": x[:6].astype(np.float32).reshape(1, 6)}


# --- TRN preprocessing ------------------------------------------------------------------------


class TrnPrep:
    """Builds the TRN input: descent patch and map crop at the same scale and orientation.

    Ports in: ``image`` camera.image (float32 [256, 256]), ``image_t``
    (camera.image@t_ns: exposure instant), ``state`` nav.state (float64 [1, 12]),
    ``state_t`` (nav.state@t_ns: its publication instant).
    Ports out: ``input`` trn.input (float32 [1, 2, 64, 64]: channel 0 the
    descent patch, channel 1 the map crop at the prior, both zero-mean unit-std)
    and ``meta`` trn.meta (float64 [1, 4]: exposure t_ns, prior x, prior y (m),
    scale (m/px)).

    The prior is the navigation position carried back (or forward) from the
    state's instant to the exposure with the state's velocity; the AGL at
    exposure likewise with v_z. The state's instant is its publication, up to
    20 ms after the filter's epoch (its latest imu.dv), so the prior may be off
    by v·20 ms (under a metre): harmless, since a fix measures the position as
    prior + Δ·s with the prior it was made with, and meta carries that prior.
    The scale is the coarsest map level s with 32·s ≤ AGL ≤ 128·s. The patch
    is the camera image area-averaged onto a 64 × 64 grid of pitch s centred
    on the image centre (``camera_patch``: each patch pixel is the exact mean
    of the camera pixels, fractions included, under its footprint).

    No usable image (nav not started, image already used, older than
    ``max_image_age_ms`` at the state's instant, AGL outside every level,
    flat image) gives all zeros, so meta scale 0: the filter ignores such fixes.

    Args:
        map_file: the onboard map .npz, relative to ``mission_dir``.
        map_sha256: its expected SHA-256.
        max_image_age_ms: oldest usable image, relative to the nav state (ms).
        mission_dir: the mission file's folder (given by the runtime).
    """

    def __init__(self, map_file: str, map_sha256: str, max_image_age_ms: float = 300.0,
                 mission_dir: str | Path = ".") -> None:
        self._map = load_map(Path(mission_dir, map_file), map_sha256)
        self._sha256 = map_sha256
        self._max_age_ns = int(max_image_age_ms * 1_000_000)
        self._last_image_t = -1

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[Any]]:
        """Prepare one TRN input from the latest image, or zeros."""
        image_t = int(inputs["image_t"][0])
        state = np.asarray(inputs["state"], dtype=np.float64).reshape(12)
        state_t = int(inputs["state_t"][0])
        if (not state.any() or image_t == self._last_image_t
                or state_t - image_t > self._max_age_ns):
            return _no_trn_input()
        lag = (image_t - state_t) * NS  # exposure − state instant (s)
        prior_x, prior_y = state[0] + state[3] * lag, state[1] + state[4] * lag
        agl = state[9] + state[5] * lag
        scale = self._scale_for(agl)
        if scale is None:
            return _no_trn_input()
        patch = normalise(camera_patch(inputs["image"], agl, scale))
        if not patch.any():
            return _no_trn_input()
        self._last_image_t = image_t
        crop = self._map.crop(scale, prior_x, prior_y)
        trn_input = np.stack([patch, crop]).reshape(1, 2, PATCH_PX, PATCH_PX)
        meta = np.array([[float(image_t), prior_x, prior_y, scale]])
        return {"input": trn_input, "meta": meta}

    def warmup(self, inputs: Arrays) -> None:
        """Run a copy (sharing the read-only map) on ``inputs``; this task's state is untouched."""
        copy.deepcopy(self, {id(self._map): self._map}).run(inputs)

    def describe(self) -> dict[str, str]:
        """Kind and map hash."""
        return {"kind": "trn-prep", "map_sha256": self._sha256}

    def _scale_for(self, agl: float) -> float | None:
        """The coarsest map scale usable at this AGL (m/px), or None."""
        for scale in self._map.scales:
            if CAPTURE_MIN_PX * scale <= agl <= CAPTURE_MAX_PX * scale:
                return scale
        return None


def camera_patch(image: npt.NDArray[Any], agl: float, scale: float) -> F32:
    """Area-average a camera image onto the 64 × 64 patch grid of pitch ``scale``.

    Camera column j covers [j, j + 1] in camera-pixel units (ground x =
    x_c + (u − 128)·g, g = 2·AGL/256), patch column b covers [128 + (b − 32)·k,
    128 + (b − 31)·k] with k = scale/g; the weight of j in b is their overlap / k.
    Rows likewise, so patch = W·image·Wᵀ over the patch's footprint: each patch
    pixel is the exact mean of the camera pixels under it, fractions included
    (a box filter of width ``scale`` sampled at the patch pixel centres).

    Args:
        image: camera image [256, 256].
        agl: height above the terrain at exposure (m).
        scale: patch pitch (m/px), at least the camera's g.

    Returns:
        float32 [64, 64] patch (not normalised).
    """
    k = scale / (2.0 * agl / CAMERA_PX)
    edges = np.clip(CAMERA_PX / 2 + (np.arange(PATCH_PX + 1) - PATCH_PX / 2) * k, 0, CAMERA_PX)
    lo, hi = math.floor(edges[0]), math.ceil(edges[-1])
    cells = np.arange(lo, hi, dtype=np.float64)
    w = ((np.clip(edges[1:, None] - cells, 0.0, 1.0) - np.clip(edges[:-1, None] - cells, 0.0, 1.0))
         / k).astype(np.float32)
    camera = np.asarray(image, dtype=np.float32).reshape(CAMERA_PX, CAMERA_PX)[lo:hi, lo:hi]
    result: F32 = w @ camera @ w.T
    return result


def _no_trn_input() -> dict[str, npt.NDArray[Any]]:
    """The 'no usable image' outputs: zero input, zero meta (scale 0)."""
    return {"input": np.zeros((1, 2, PATCH_PX, PATCH_PX), dtype=np.float32),
            "meta": np.zeros((1, 4))}


# --- correlation TRN --------------------------------------------------------------------------


def ncc_surface(template: npt.NDArray[Any], search: npt.NDArray[Any]) -> F64 | None:
    """Normalised cross-correlation of ``template`` at every offset inside ``search``.

    FFT correlation for the numerator, integral images for the local sums.

    Args:
        template: [th, tw].
        search: [sh, sw], at least as large.

    Returns:
        [sh − th + 1, sw − tw + 1]: NCC with the template's top-left at (row, col);
        None when the template is flat. Flat search windows score 0.
    """
    t = np.asarray(template, dtype=np.float64)
    m = np.asarray(search, dtype=np.float64)
    th, tw = t.shape
    t0 = t - t.mean()
    t_norm = math.sqrt(float((t0 * t0).sum()))
    if not t_norm > 1e-9:
        return None
    oh, ow = m.shape[0] - th + 1, m.shape[1] - tw + 1
    spectrum = np.conj(np.fft.rfft2(t0, s=m.shape)) * np.fft.rfft2(m)
    numerator = np.fft.irfft2(spectrum, s=m.shape)[:oh, :ow]
    sums = _window_sums(m, th, tw)
    squares = _window_sums(m * m, th, tw)
    variance = np.maximum(squares - sums * sums / (th * tw), 0.0)
    denominator = t_norm * np.sqrt(variance)
    valid = denominator > 1e-9 * t_norm
    result: F64 = np.where(valid, numerator / np.where(valid, denominator, 1.0), 0.0)
    return result


def _window_sums(image: F64, th: int, tw: int) -> F64:
    """Sum of ``image`` over every th × tw window (integral image)."""
    integral = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    integral[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    result: F64 = (integral[th:, tw:] - integral[:-th, tw:]
                   - integral[th:, :-tw] + integral[:-th, :-tw])
    return result


def _quadratic_peak(window: F64) -> tuple[float, float]:
    """Sub-pixel vertex (row, column offsets) of a 2-D quadratic through a 3 × 3 peak window.

    Gradient and Hessian from central differences (the cross term included:
    the NCC peak of an anisotropic texture is an inclined ridge, where
    separate 1-D parabolas are biased by up to 0.2 px). If the Hessian is not
    negative definite, each axis falls back to its own 1-D parabola. Offsets
    are clipped to ±1 px.
    """
    gy = 0.5 * (window[2, 1] - window[0, 1])
    gx = 0.5 * (window[1, 2] - window[1, 0])
    hyy = window[2, 1] - 2.0 * window[1, 1] + window[0, 1]
    hxx = window[1, 2] - 2.0 * window[1, 1] + window[1, 0]
    hxy = 0.25 * (window[2, 2] - window[2, 0] - window[0, 2] + window[0, 0])
    det = hxx * hyy - hxy * hxy
    if hxx < 0.0 and det > 0.0:
        dy = (hxy * gx - hxx * gy) / det
        dx = (hxy * gy - hyy * gx) / det
    else:
        dy = -gy / hyy if hyy < 0.0 else 0.0
        dx = -gx / hxx if hxx < 0.0 else 0.0
    return min(max(dy, -1.0), 1.0), min(max(dx, -1.0), 1.0)


def correlate(patch: npt.NDArray[Any], crop: npt.NDArray[Any],
              template_px: int = 32) -> tuple[float, float, float]:
    """Match the central ``template_px`` square of the patch over the map crop.

    Args:
        patch: descent patch [64, 64].
        crop: map crop [64, 64], centred on the prior.
        template_px: template side (px); the search range is ±(64 − template)/2.

    Returns:
        (Δx, Δy, confidence): truth − prior in pixels (+x = +column, +y =
        +row), sub-pixel by a 2-D quadratic through the peak and its 8
        neighbours; confidence = peak NCC clipped to [0, 1], 0 when the
        patch is flat or the peak lies on the border of the search range
        (not a verified maximum: the true one may lie outside the range).
    """
    size = patch.shape[0]
    lo = (size - template_px) // 2
    surface = ncc_surface(patch[lo:lo + template_px, lo:lo + template_px], crop)
    if surface is None:
        return 0.0, 0.0, 0.0
    i, j = np.unravel_index(int(np.argmax(surface)), surface.shape)
    last_i, last_j = surface.shape[0] - 1, surface.shape[1] - 1
    peak = float(surface[i, j])
    if i in (0, last_i) or j in (0, last_j):
        return float(j - lo), float(i - lo), 0.0
    di, dj = _quadratic_peak(surface[i - 1:i + 2, j - 1:j + 2])
    return float(j + dj - lo), float(i + di - lo), min(max(peak, 0.0), 1.0)


class CorrelationTrn:
    """Classical TRN (like Mars 2020's LVS): normalised cross-correlation, FFT-based.

    Ports: ``input`` trn.input (float32 [1, 2, 64, 64]) → ``fix`` trn.fix
    (float32 [1, 3]: Δx, Δy in pixels, truth − prior, and confidence); an
    all-zero input (no image) gives confidence 0.

    Args:
        template_px: side of the central patch square matched over the crop (px).
    """

    def __init__(self, template_px: int = 32) -> None:
        self._template_px = int(template_px)

    def run(self, inputs: Arrays) -> dict[str, F32]:
        """Match channel 0's centre over channel 1."""
        pair = np.asarray(inputs["input"]).reshape(2, PATCH_PX, PATCH_PX)
        dx, dy, confidence = correlate(pair[0], pair[1], self._template_px)
        return {"fix": np.array([[dx, dy, confidence]], dtype=np.float32)}

    def warmup(self, inputs: Arrays) -> None:
        """Run once on ``inputs``: the task is stateless."""
        self.run(inputs)

    def describe(self) -> dict[str, str]:
        """Kind and template size."""
        return {"kind": "correlation-trn", "template_px": str(self._template_px)}
