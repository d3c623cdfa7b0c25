"""Shaded relief with cast shadows, the nadir camera image and the onboard map product.

Relief is the cosine of the sun's incidence on the 2 m terrain (Lambertian,
albedo 1, so already in [0, 1]), 0 where the surface faces away from the sun or
lies in a cast shadow. Coarser levels are mean-pooled from it, so a coarse
pixel is the true area average of the relief, shadows included; the camera and
the map both sample these levels, so they agree at equal scale and sun.

Sun angles are in degrees: elevation above the horizon, azimuth from +x
towards +y (counter-clockwise seen from above).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hil.ltd1.constants import (
    CAMERA_FOV_DEG,
    CAMERA_SIZE_PX,
    DEM_SCALE_M,
    MAP_HALF_WIDTHS_M,
    MAP_SCALES_M,
    MAP_SUN_AZIMUTH_DEG,
    MAP_SUN_ELEVATION_DEG,
)
from hil.ltd1.terrain import Float32Array, Terrain, mean_pool

_MAX_LEVELS = 6  # 2 m to 64 m per pixel at the mission resolution
_SHADOW_TOLERANCE_M = 0.01
_BLOCK_ROWS = 64
_CACHE_SIZE = 2  # shaded pyramids kept per process (about 85 MB each at full size)


class ShadedPyramid:
    """Relief of one terrain under one sun, level k at ``resolution_m · 2**k`` m/px.

    Level 0 is shaded on first use; each coarser level is mean-pooled from the
    one below on first use. Every level shares the terrain's origin.

    Attributes:
        origin_m: (x_min, y_min) of pixel (0, 0)'s corner, every level (m).
        resolution_m: level 0 pixel size (m).
        levels: number of levels.
    """

    def __init__(self, terrain: Terrain, elevation_deg: float, azimuth_deg: float) -> None:
        """Set up the levels; nothing is shaded yet.

        Raises:
            ValueError: the sun elevation is not in (0°, 90°).
        """
        if not 0.0 < elevation_deg < 90.0:
            raise ValueError(f"sun elevation: expected (0, 90) deg, got {elevation_deg}")
        self.origin_m = terrain.origin_m
        self.resolution_m = terrain.resolution_m
        size = terrain.params.size_px
        self.levels = 1
        while self.levels < _MAX_LEVELS and size % 2 == 0 and size >= 4:
            size //= 2
            self.levels += 1
        self._terrain = terrain
        self._sun_deg = (elevation_deg, azimuth_deg)
        self._cache: dict[int, Float32Array] = {}

    def level(self, k: int) -> Float32Array:
        """Relief at level ``k`` (float32, values in [0, 1], read-only)."""
        if k not in self._cache:
            if k == 0:
                img = shade(self._terrain.heights, self.resolution_m, *self._sun_deg)
            else:
                img = mean_pool(self.level(k - 1), 2)
            img.flags.writeable = False
            self._cache[k] = img
        return self._cache[k]

    def pixel_m(self, k: int) -> float:
        """Pixel size of level ``k`` (m)."""
        return self.resolution_m * (1 << k)


_pyramids: OrderedDict[tuple[str, float, float], ShadedPyramid] = OrderedDict()
_pyramids_lock = threading.Lock()


def shaded_pyramid(terrain: Terrain, elevation_deg: float, azimuth_deg: float) -> ShadedPyramid:
    """The terrain's relief pyramid under a sun, shared in-process (LRU of 2)."""
    key = (terrain.key, float(elevation_deg), float(azimuth_deg))
    with _pyramids_lock:
        pyramid = _pyramids.get(key)
        if pyramid is None:
            pyramid = ShadedPyramid(terrain, elevation_deg, azimuth_deg)
            _pyramids[key] = pyramid
            if len(_pyramids) > _CACHE_SIZE:
                _pyramids.popitem(last=False)
        _pyramids.move_to_end(key)
        return pyramid


def sun_vector(elevation_deg: float, azimuth_deg: float) -> tuple[float, float, float]:
    """Unit vector from the ground towards the sun (x, y, z)."""
    e = math.radians(elevation_deg)
    a = math.radians(azimuth_deg)
    return (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))


def shade(heights: Float32Array, resolution_m: float, elevation_deg: float,
          azimuth_deg: float) -> Float32Array:
    """Lambertian relief with cast shadows, float32 in [0, 1], same shape as ``heights``.

    Args:
        heights: height field (m), rows along +y, columns along +x.
        resolution_m: cell size (m).
        elevation_deg: sun elevation (deg, in (0, 90)).
        azimuth_deg: sun azimuth (deg, from +x towards +y).
    """
    relief = _lambert(heights, resolution_m, sun_vector(elevation_deg, azimuth_deg))
    np.copyto(relief, 0.0, where=_cast_shadows(heights, resolution_m, elevation_deg, azimuth_deg))
    return relief


def _lambert(heights: Float32Array, resolution_m: float,
             sun: tuple[float, float, float]) -> Float32Array:
    """max(0, n·sun) with normals from central differences; edge cells copy their neighbour.

    Works in blocks of rows so the temporaries stay in cache (about 3× faster
    than whole-array operations at 4000 × 4000).
    """
    ux, uy, uz = sun
    h = heights
    rows, cols = h.shape
    out = np.empty_like(h)
    scale = np.float32(0.5 / resolution_m)
    gx = np.empty((_BLOCK_ROWS, cols - 2), np.float32)
    gy = np.empty_like(gx)
    norm = np.empty_like(gx)
    for r0 in range(1, rows - 1, _BLOCK_ROWS):
        r1 = min(r0 + _BLOCK_ROWS, rows - 1)
        x, y, w = gx[: r1 - r0], gy[: r1 - r0], norm[: r1 - r0]
        np.subtract(h[r0:r1, 2:], h[r0:r1, :-2], out=x)
        np.subtract(h[r0 + 1 : r1 + 1, 1:-1], h[r0 - 1 : r1 - 1, 1:-1], out=y)
        x *= scale
        y *= scale
        np.multiply(x, x, out=w)
        w += np.float32(1.0)
        w += y * y
        np.sqrt(w, out=w)
        x *= np.float32(-ux)
        y *= np.float32(-uy)
        x += y
        x += np.float32(uz)
        x /= w
        np.clip(x, 0.0, 1.0, out=out[r0:r1, 1:-1])
    out[:, 0], out[:, -1] = out[:, 1], out[:, -2]
    out[0], out[-1] = out[1], out[-2]
    return out


def _cast_shadows(heights: Float32Array, resolution_m: float, elevation_deg: float,
                  azimuth_deg: float) -> npt.NDArray[np.bool_]:
    """Cells that some terrain upstream (towards the sun) rises above the sun ray of.

    Sweeps lines perpendicular to the sun's dominant horizontal axis, starting on
    the sun's side, carrying the "shadow surface" S = max over the upstream ray of
    (h - distance·tan(elevation)): S(p) = max(h(p), S(p one step sunwards) - drop),
    the upstream value linearly interpolated across the neighbouring line.
    """
    ux, uy, _ = sun_vector(elevation_deg, azimuth_deg)
    along_x = abs(ux) >= abs(uy)
    lines = np.ascontiguousarray(heights.T) if along_x else heights
    march, lateral = (ux, uy) if along_x else (uy, ux)
    frac = lateral / abs(march)  # lateral offset (cells) of the upstream point, |frac| ≤ 1
    drop = np.float32(resolution_m * math.hypot(1.0, frac) * math.tan(math.radians(elevation_deg)))
    w_near, w_far = np.float32(1.0 - abs(frac)), np.float32(abs(frac))
    count, width = lines.shape
    order = range(count - 1, -1, -1) if march > 0 else range(count)
    mask = np.empty(lines.shape, np.bool_)
    # prev holds S of the previous line, padded by one replicated cell on the far side.
    prev = np.empty(width + 1, np.float32)
    near, far = (slice(0, width), slice(1, width + 1)) if frac >= 0 else (
        slice(1, width + 1), slice(0, width))
    edge = width if frac >= 0 else 0
    body = slice(0, width) if frac >= 0 else slice(1, width + 1)
    cur = np.empty(width, np.float32)
    tmp = np.empty(width, np.float32)
    first = True
    tol = np.float32(_SHADOW_TOLERANCE_M)
    for i in order:
        line = lines[i]
        if first:
            cur[:] = line
            mask[i] = False
            first = False
        else:
            np.multiply(prev[near], w_near, out=cur)
            np.multiply(prev[far], w_far, out=tmp)
            cur += tmp
            cur -= drop
            np.subtract(cur, line, out=tmp)
            np.greater(tmp, tol, out=mask[i])
            np.maximum(cur, line, out=cur)
        prev[body] = cur
        prev[edge] = cur[-1] if frac >= 0 else cur[0]
    return mask.T if along_x else mask


def render_camera(pyramid: ShadedPyramid, x_m: float, y_m: float, agl_m: float, *,
                  size_px: int = CAMERA_SIZE_PX, fov_deg: float = CAMERA_FOV_DEG) -> Float32Array:
    """Noise-free nadir image (relief in [0, 1]) seen from (x, y) at ``agl_m`` above ground.

    Pixel (row i, column j) sees ground point ``(x + (j + 0.5 - size/2)·g,
    y + (i + 0.5 - size/2)·g)`` with ``g = 2·agl·tan(fov/2)/size``; the value is
    sampled bilinearly from the pyramid level whose pixel is nearest g
    (geometric), so it approximates the area average; points off the terrain
    take the nearest edge value.

    Args:
        pyramid: relief under the run's sun.
        x_m: nadir point x (m).
        y_m: nadir point y (m).
        agl_m: height above the nadir terrain (m, > 0).
        size_px: image side (px).
        fov_deg: full field of view (deg).
    """
    g_m = 2.0 * agl_m * math.tan(math.radians(0.5 * fov_deg)) / size_px
    k = min(max(round(math.log2(g_m / pyramid.resolution_m)), 0), pyramid.levels - 1)
    offsets = np.arange(size_px, dtype=np.float64) + (0.5 - 0.5 * size_px)
    return sample_bilinear(pyramid, k, x_m + offsets * g_m, y_m + offsets * g_m)


def sample_bilinear(pyramid: ShadedPyramid, k: int, xs_m: npt.NDArray[np.float64],
                    ys_m: npt.NDArray[np.float64]) -> Float32Array:
    """Level ``k`` sampled bilinearly on the grid ``ys_m`` (rows) × ``xs_m`` (columns).

    Both coordinate vectors must be increasing.
    """
    img = pyramid.level(k)
    pixel_m = pyramid.pixel_m(k)
    j, fx = _axis_weights((xs_m - pyramid.origin_m[0]) / pixel_m - 0.5, img.shape[1])
    i, fy = _axis_weights((ys_m - pyramid.origin_m[1]) / pixel_m - 0.5, img.shape[0])
    # Gather whole rows of the column window only, then the columns within them.
    window = img[:, j[0] : j[-1] + 2]
    j = j - j[0]
    rows0 = window[i]
    rows1 = window[i + 1]
    top = rows0[:, j]
    top += (rows0[:, j + 1] - top) * fx
    bottom = rows1[:, j]
    bottom += (rows1[:, j + 1] - bottom) * fx
    bottom -= top
    bottom *= fy[:, None]
    top += bottom
    return top


def _axis_weights(u: npt.NDArray[np.float64], n: int) -> tuple[
        npt.NDArray[np.intp], Float32Array]:
    """Lower index and fraction for bilinear interpolation at fractional indices, clamped."""
    u = np.clip(u, 0.0, n - 1.0)
    lower = np.minimum(u.astype(np.intp), n - 2)
    return lower, (u - lower).astype(np.float32)


def build_map(terrain: Terrain, path: Path) -> str:
    """Write the onboard map product (docs/ltd1.md) for ``terrain``; return its SHA-256.

    Relief under the map sun, mean-pooled from the 2 m level to each scale over
    ``MAP_HALF_WIDTHS_M`` around the target (clipped to the terrain), each level
    normalised to zero mean and unit std; the DEM is the terrain mean-pooled to
    ``DEM_SCALE_M``. The file is an uncompressed ``.npz`` with fixed zip
    timestamps, so the same terrain gives the same bytes. Written atomically.
    """
    relief = shaded_pyramid(terrain, MAP_SUN_ELEVATION_DEG, MAP_SUN_AZIMUTH_DEG).level(0)
    res = terrain.resolution_m
    x_min, y_min = terrain.origin_m
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "scales": np.array(MAP_SCALES_M, np.int64)}
    for scale, half_m in zip(MAP_SCALES_M, MAP_HALF_WIDTHS_M, strict=True):
        half_m = min(half_m, -x_min, -y_min) // scale * scale
        factor = round(scale / res)
        start_x, start_y = round((-half_m - x_min) / res), round((-half_m - y_min) / res)
        width = round(2 * half_m / res)
        crop = relief[start_y : start_y + width, start_x : start_x + width]
        level = mean_pool(crop, factor).astype(np.float64)
        level -= level.mean()
        level /= level.std()
        arrays[f"img_{scale}"] = level.astype(np.float32)
        arrays[f"origin_{scale}"] = np.array([-half_m, -half_m], np.float64)
    arrays["dem"] = terrain.pooled(round(DEM_SCALE_M / res))
    arrays["dem_scale"] = np.array(float(DEM_SCALE_M), np.float64)
    arrays["dem_origin"] = np.array(terrain.origin_m, np.float64)
    _write_npz(path, arrays)
    return map_sha256(path)


def map_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the hash the mission config pins for the map)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
    """``np.savez`` layout (stored, zip64) with fixed timestamps, via tmp + os.replace.

    ``np.savez`` stamps each member with the current time, so its bytes differ
    between runs; a fixed date keeps the file's hash a function of its content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with (tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp,
          zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf):
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    os.replace(tmp.name, path)
