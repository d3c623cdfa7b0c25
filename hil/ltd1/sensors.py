"""Sensor models: accelerometer Δv counter, laser altimeter, nadir camera, touchdown discrete.

Each model owns its numpy Generator and draws the same amount of noise at
every sample, valid or not, so a run's noise depends only on its seed and the
sample count. Outputs have the dtypes and shapes of docs/ltd1.md "Signals".
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np
import numpy.typing as npt

from flightai.timebase import NS_PER_S
from hil.ltd1.constants import (
    ACCEL_NOISE_MPS2_RTHZ,
    ALTIMETER_MAX_RANGE_M,
    ALTIMETER_SIGMA_FRACTION,
    ALTIMETER_SIGMA_MIN_M,
    CAMERA_MIN_AGL_M,
    CAMERA_READ_NOISE,
    TOUCHDOWN_AGL_M,
)
from hil.ltd1.render import ShadedPyramid, render_camera
from hil.ltd1.terrain import Float32Array, Float64Array
from hil.ltd1.vehicle import Vec3


class Accelerometer:
    """Accumulated Δv (m/s) since t = 0: ∫ (specific force + bias + white noise) dt.

    The white noise (density ``noise_mps2_rthz``) integrates to a random walk
    whose step over an interval dt has σ = density·√dt per axis.
    """

    def __init__(self, bias_mps2: Vec3, rng: np.random.Generator,
                 noise_mps2_rthz: float = ACCEL_NOISE_MPS2_RTHZ) -> None:
        self._bias_mps2 = np.array(bias_mps2, np.float64)
        self._rng = rng
        self._noise_mps2_rthz = noise_mps2_rthz
        self._walk_mps = np.zeros(3, np.float64)
        self._last_t_ns = 0

    def sample(self, t_ns: int, dv_sensed_mps: Vec3) -> Float64Array:
        """The counter at ``t_ns`` given the true ∫ specific force dt (m/s); float64 [3]."""
        dt_s = (t_ns - self._last_t_ns) / NS_PER_S
        self._last_t_ns = t_ns
        self._walk_mps += self._rng.standard_normal(3) * (self._noise_mps2_rthz * math.sqrt(dt_s))
        dv: Float64Array = np.array(dv_sensed_mps, np.float64)
        dv += self._bias_mps2 * (t_ns / NS_PER_S)
        dv += self._walk_mps
        return dv


class Altimeter:
    """Vertical range to the terrain (m), σ = max(0.5 m, 0.5 % of range), none above 3 km.

    Gaussian noise, not clipped: near the ground a reading can be slightly negative.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def sample(self, agl_m: float) -> Float32Array | None:
        """A float32 [1] range, or None when the range exceeds the valid maximum."""
        noise = float(self._rng.standard_normal())
        if agl_m > ALTIMETER_MAX_RANGE_M:
            return None
        sigma_m = max(ALTIMETER_SIGMA_MIN_M, ALTIMETER_SIGMA_FRACTION * agl_m)
        return np.array([agl_m + sigma_m * noise], np.float32)


class Camera:
    """Nadir image: gain · relief (under the run's sun) + read noise, float32 [256, 256].

    Read noise is drawn as 16-bit uniform integers mapped through a table of
    normal quantiles (unit variance, tails cut at 4.2σ): statistically Gaussian
    for this purpose and 5× cheaper than ``standard_normal`` per image. Below
    ``CAMERA_MIN_AGL_M`` (the camera's height on the landed vehicle) the image
    is rendered from that height.
    """

    def __init__(self, pyramid: ShadedPyramid, gain: float, rng: np.random.Generator) -> None:
        self._pyramid = pyramid
        self._gain = np.float32(gain)
        self._rng = rng

    def sample(self, x_m: float, y_m: float, agl_m: float) -> Float32Array:
        """The image taken with the nadir point at (x, y) (m), ``agl_m`` above it."""
        img = render_camera(self._pyramid, x_m, y_m, max(agl_m, CAMERA_MIN_AGL_M))
        noise = _read_noise_table().take(self._rng.integers(0, 1 << 16, img.shape, np.uint16))
        img *= self._gain
        img += noise
        return img


@functools.cache
def _read_noise_table() -> Float32Array:
    """Read noise (σ = ``CAMERA_READ_NOISE``) at the 65536 mid-quantiles of a normal."""
    inv_cdf = statistics.NormalDist().inv_cdf
    table = np.array([inv_cdf((k + 0.5) / (1 << 16)) for k in range(1 << 16)])
    table *= CAMERA_READ_NOISE / table.std()
    return table.astype(np.float32)


class TouchdownSensor:
    """Discrete that latches to 1 once h_AGL ≤ 0.1 m; uint8 [1]."""

    def __init__(self) -> None:
        self._latched = False

    def sample(self, agl_m: float) -> npt.NDArray[np.uint8]:
        """The discrete at the given height above the terrain (m)."""
        self._latched = self._latched or agl_m <= TOUCHDOWN_AGL_M
        return np.array([1 if self._latched else 0], np.uint8)
