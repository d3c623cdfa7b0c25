"""Seeded procedural cratered height field, centred on the target and cached on disk.

The grid is cell-centred: cell (row i, column j) covers
``[x_min + j·res, x_min + (j + 1)·res] × [y_min + i·res, y_min + (i + 1)·res]``
with rows along +y and columns along +x, like the onboard map product, so
mean-pooling by an integer factor keeps cell edges aligned with the map's. The
target (0, 0) is the corner shared by the four central cells; the field is
shifted so that its bilinear height there is 0 (to float32 rounding, ~1 µm).

Relief: low-amplitude fractal roughness (cubic B-spline octaves, Hurst
exponent ``hurst``, from 2 km down to 2 m wavelength) plus craters with a
cumulative size distribution N(>D) ∝ D⁻² between ``crater_min_m`` and
``crater_max_m``, each a bowl with a raised rim and ejecta, fresh (parabolic,
sharp rim) to degraded (smooth, shallow). Only +, ×, / and sqrt touch the
field, so the bytes do not depend on the CPU's SIMD paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from hil.ltd1.constants import TERRAIN_RESOLUTION_M, TERRAIN_SIZE_PX

TERRAIN_VERSION = 1
_OCTAVES = 10  # coarsest lattice spacing 2**10 px
_ROUGHNESS_WAVELENGTH_M = 2048.0  # wavelength at which roughness_m applies

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TerrainParams:
    """What a terrain is built from besides its seed; part of the cache key.

    Attributes:
        size_px: cells per side (even).
        resolution_m: cell size (m).
        roughness_m: roughness amplitude at 2 km wavelength (m).
        hurst: roughness Hurst exponent (amplitude ∝ wavelength^hurst).
        craters_per_km2: craters wider than 100 m per km².
        crater_min_m: smallest crater diameter (m).
        crater_max_m: largest crater diameter (m).
    """

    size_px: int = TERRAIN_SIZE_PX
    resolution_m: float = TERRAIN_RESOLUTION_M
    roughness_m: float = 12.0
    hurst: float = 0.8
    craters_per_km2: float = 2.5
    crater_min_m: float = 10.0
    crater_max_m: float = 400.0

    def digest(self) -> str:
        """Short hash of the version and every parameter, for cache file names."""
        text = repr((TERRAIN_VERSION, dataclasses.astuple(self)))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class Terrain:
    """A height field (m) on a square cell-centred grid around the target.

    Attributes:
        seed: the seed it was built from.
        params: the build parameters.
        heights: float32 [size, size] heights (m), read-only.
        resolution_m: cell size (m).
        origin_m: (x_min, y_min), the corner of cell (0, 0) (m).
    """

    def __init__(self, seed: int, params: TerrainParams, heights: Float32Array) -> None:
        heights.flags.writeable = False
        self.seed = seed
        self.params = params
        self.heights = heights
        self.resolution_m = params.resolution_m
        half_m = 0.5 * params.size_px * params.resolution_m
        self.origin_m = (-half_m, -half_m)

    @property
    def key(self) -> str:
        """Identity of this terrain (seed, version, parameters), for caches."""
        return f"terrain-v{TERRAIN_VERSION}-{self.params.digest()}-seed{self.seed}"

    @property
    def extent_m(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the covered area (m)."""
        x_min, y_min = self.origin_m
        side_m = self.params.size_px * self.resolution_m
        return (x_min, x_min + side_m, y_min, y_min + side_m)

    @classmethod
    def build(cls, seed: int, params: TerrainParams | None = None) -> Terrain:
        """Build a terrain from scratch (seconds at full size); see :meth:`load`."""
        params = params or TerrainParams()
        if params.size_px % 2:
            raise ValueError(f"size_px: expected an even number, got {params.size_px}")
        rough_ss, crater_ss = np.random.SeedSequence(seed).spawn(2)
        heights = _roughness(np.random.default_rng(rough_ss), params)
        _add_craters(heights, np.random.default_rng(crater_ss), params)
        c = params.size_px // 2
        centre = heights[c - 1 : c + 1, c - 1 : c + 1].astype(np.float64)
        shifted = heights.astype(np.float64) - 0.25 * float(centre.sum())
        return cls(seed, params, shifted.astype(np.float32))

    @classmethod
    def load(
        cls, seed: int, params: TerrainParams | None = None, cache: Path | None = None
    ) -> Terrain:
        """Load a terrain from the disk cache, building and caching it if absent.

        Args:
            seed: terrain seed.
            params: build parameters (default: the mission's 8 km × 8 km at 2 m).
            cache: cache folder (default :func:`cache_dir`).

        Returns:
            The terrain, byte-identical to ``Terrain.build(seed, params)``.
        """
        params = params or TerrainParams()
        folder = cache or cache_dir()
        path = folder / f"terrain-v{TERRAIN_VERSION}-{params.digest()}-seed{seed}.npy"
        shape = (params.size_px, params.size_px)
        try:
            heights = np.load(path)
            if heights.dtype == np.float32 and heights.shape == shape:
                return cls(seed, params, heights)
        except (OSError, ValueError):
            pass  # absent or unreadable: rebuild and replace it
        terrain = cls.build(seed, params)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, terrain.heights)
        os.replace(tmp.name, path)
        return terrain

    def height_m(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike
    ) -> Float64Array:
        """Bilinear height (m) at points (m), vectorised; clamped to the edge cells."""
        n = self.params.size_px
        u = np.clip((np.asarray(x_m, np.float64) - self.origin_m[0]) / self.resolution_m - 0.5,
                    0.0, n - 1.0)
        v = np.clip((np.asarray(y_m, np.float64) - self.origin_m[1]) / self.resolution_m - 0.5,
                    0.0, n - 1.0)
        j = np.minimum(u.astype(np.intp), n - 2)
        i = np.minimum(v.astype(np.intp), n - 2)
        fx = u - j
        fy = v - i
        h = self.heights
        top = h[i, j] * (1.0 - fx) + h[i, j + 1] * fx
        bottom = h[i + 1, j] * (1.0 - fx) + h[i + 1, j + 1] * fx
        result: Float64Array = top * (1.0 - fy) + bottom * fy
        return result

    def height_at_m(self, x_m: float, y_m: float) -> float:
        """Scalar :meth:`height_m` without numpy call overhead (for the dynamics loop)."""
        n = self.params.size_px
        u = min(max((x_m - self.origin_m[0]) / self.resolution_m - 0.5, 0.0), n - 1.0)
        v = min(max((y_m - self.origin_m[1]) / self.resolution_m - 0.5, 0.0), n - 1.0)
        j = min(int(u), n - 2)
        i = min(int(v), n - 2)
        fx = u - j
        fy = v - i
        h = self.heights
        top = float(h[i, j]) * (1.0 - fx) + float(h[i, j + 1]) * fx
        bottom = float(h[i + 1, j]) * (1.0 - fx) + float(h[i + 1, j + 1]) * fx
        return top * (1.0 - fy) + bottom * fy

    def pooled(self, factor: int) -> Float32Array:
        """Heights mean-pooled over ``factor`` × ``factor`` cells (same origin)."""
        return mean_pool(self.heights, factor)


def cache_dir() -> Path:
    """The LTD-1 disk cache: ``$FLIGHTAI_CACHE/ltd1`` or ``~/.cache/flightai/ltd1``."""
    root = os.environ.get("FLIGHTAI_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "flightai"
    return base / "ltd1"


def mean_pool(a: Float32Array, factor: int) -> Float32Array:
    """Mean over ``factor`` × ``factor`` blocks (trailing partial blocks dropped).

    Sums float32 in a fixed order (explicit slices, no reductions) so the
    result does not depend on numpy's SIMD paths.
    """
    rows = a.shape[0] // factor * factor
    cols = a.shape[1] // factor * factor
    by_rows = a[0:rows:factor, :cols].copy()
    for k in range(1, factor):
        by_rows += a[k:rows:factor, :cols]
    total: Float32Array = by_rows[:, 0::factor].copy()
    for k in range(1, factor):
        total += by_rows[:, k::factor]
    total *= np.float32(1.0 / (factor * factor))
    return total


def _refine(c: Float32Array) -> Float32Array:
    """One cubic B-spline subdivision step on both axes: n coefficients -> 2n - 5."""
    b = np.empty((2 * c.shape[0] - 5, c.shape[1]), np.float32)
    b[0::2] = (c[:-2] + 6.0 * c[1:-1] + c[2:]) * 0.125
    b[1::2] = (c[1:-2] + c[2:-1]) * 0.5
    out = np.empty((b.shape[0], 2 * c.shape[1] - 5), np.float32)
    out[:, 0::2] = (b[:, :-2] + 6.0 * b[:, 1:-1] + b[:, 2:]) * 0.125
    out[:, 1::2] = (b[:, 1:-2] + b[:, 2:-1]) * 0.5
    return out


def _roughness(rng: np.random.Generator, params: TerrainParams) -> Float32Array:
    """Fractal roughness: random B-spline coefficients added at each octave, refined."""
    n = params.size_px
    coarse = -(-(n - 5) // 2**_OCTAVES) + 5  # refined _OCTAVES times, it covers n
    field = np.zeros((coarse, coarse), np.float32)
    for octave in range(_OCTAVES):
        spacing_m = params.resolution_m * 2 ** (_OCTAVES - octave)
        sigma_m = params.roughness_m * (spacing_m / _ROUGHNESS_WAVELENGTH_M) ** params.hurst
        field += rng.standard_normal(field.shape, np.float32) * np.float32(sigma_m)
        field = _refine(field)
    start = (field.shape[0] - n) // 2
    return np.ascontiguousarray(field[start : start + n, start : start + n])


class Craters(NamedTuple):
    """A crater population: diameter (m), centre (x, y) (m), freshness in [0, 1]."""

    diameter_m: Float64Array
    centre_m: Float64Array
    freshness: Float64Array


def draw_craters(rng: np.random.Generator, params: TerrainParams) -> Craters:
    """Draw craters over the terrain plus an ejecta margin of ``crater_max_m``.

    N(>D) ∝ D⁻² truncated to [min, max], sampled by inverse CDF
    D = min / sqrt(1 - u·(1 - (min/max)²)); most craters are degraded
    (freshness = u²); centres uniform.
    """
    side_m = params.size_px * params.resolution_m + 2.0 * params.crater_max_m
    count = round(params.craters_per_km2 * (side_m / 1000.0) ** 2
                  * (100.0 / params.crater_min_m) ** 2)
    c = 1.0 - (params.crater_min_m / params.crater_max_m) ** 2
    diameter_m = params.crater_min_m / np.sqrt(1.0 - rng.random(count) * c)
    centre_m = rng.random((count, 2)) * side_m - 0.5 * side_m
    return Craters(diameter_m, centre_m, rng.random(count) ** 2)


def _add_craters(heights: Float32Array, rng: np.random.Generator, params: TerrainParams) -> None:
    """Add :func:`draw_craters`'s craters to the field in place."""
    res = params.resolution_m
    half_m = 0.5 * params.size_px * res
    craters = draw_craters(rng, params)
    for d_m, (x_m, y_m), fresh in zip(craters.diameter_m.tolist(), craters.centre_m.tolist(),
                                     craters.freshness.tolist(), strict=True):
        _add_crater(heights, (x_m + half_m) / res - 0.5, (y_m + half_m) / res - 0.5,
                    0.5 * d_m / res, d_m * (0.04 + 0.16 * fresh), fresh)


def _add_crater(heights: Float32Array, cx_px: float, cy_px: float, radius_px: float,
                depth_m: float, freshness: float) -> None:
    """Add one crater: bowl (rim to floor ``depth_m``), rim 0.2·depth, ejecta to 2 radii.

    Inside, ``rim - depth·(f·(1-ρ²) + (1-f)·(1-ρ²)²)`` blends a fresh parabolic
    bowl (f = 1) with a smooth degraded one; outside, ``rim·ρ⁻³`` tapers to 0 at ρ = 2.
    """
    n = heights.shape[0]
    reach_px = 2.0 * radius_px
    i0, i1 = max(math.floor(cy_px - reach_px), 0), min(math.ceil(cy_px + reach_px) + 1, n)
    j0, j1 = max(math.floor(cx_px - reach_px), 0), min(math.ceil(cx_px + reach_px) + 1, n)
    if i0 >= i1 or j0 >= j1:
        return
    dy = (np.arange(i0, i1) - cy_px) / radius_px
    dx = (np.arange(j0, j1) - cx_px) / radius_px
    rho2 = dy[:, None] ** 2 + dx[None, :] ** 2
    rim_m = 0.2 * depth_m
    bowl = 1.0 - rho2
    inside = rim_m - depth_m * bowl * (freshness + (1.0 - freshness) * bowl)
    taper = np.clip((4.0 - rho2) * (1.0 / 3.0), 0.0, 1.0)
    outside = rim_m * taper / (rho2 * np.sqrt(np.maximum(rho2, 1.0)))
    heights[i0:i1, j0:j1] += np.where(rho2 < 1.0, inside, outside).astype(np.float32)
