from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from hil.ltd1 import render
from hil.ltd1.render import build_map, map_sha256, render_camera, shade, shaded_pyramid
from hil.ltd1.terrain import Terrain

FLAT = np.zeros((64, 64), np.float32)


def tower(height_m: float) -> np.ndarray:
    h: np.ndarray = FLAT.copy()
    h[32, 32] = height_m
    return h


@pytest.mark.parametrize(("azimuth_deg", "cells"), [
    (0.0, [(32, 31 - k) for k in range(4)]),  # sun towards +x: shadow towards -x (columns)
    (90.0, [(31 - k, 32) for k in range(4)]),  # sun towards +y: shadow towards -y (rows)
    (180.0, [(32, 33 + k) for k in range(4)]),
])
def test_cast_shadow_length_and_direction(azimuth_deg: float, cells: list[tuple[int, int]]) -> None:
    # A 10 m tower, sun at 45°: shadow 10 m long, i.e. 5 cells of 2 m (4 full ones tested).
    relief = shade(tower(10.0), 2.0, 45.0, azimuth_deg)
    for cell in cells:
        assert relief[cell] == 0.0, cell
    lit = shade(FLAT, 2.0, 45.0, azimuth_deg)
    assert np.count_nonzero(relief[lit > 0] == 0.0) <= 8  # the shadow and the tower's back
    assert lit[10, 10] == pytest.approx(np.sin(np.radians(45.0)), abs=1e-6)


def test_shadow_ends_where_the_sun_ray_clears_the_tower() -> None:
    relief = shade(tower(10.0), 2.0, 45.0, 0.0)
    assert relief[32, 26] > 0.0  # 12 m from the tower: beyond the 10 m shadow


def test_relief_range_and_low_sun_makes_more_shadow(small_terrain: Terrain) -> None:
    high = shade(small_terrain.heights, 2.0, 45.0, 60.0)
    low = shade(small_terrain.heights, 2.0, 8.0, 60.0)
    for relief in (high, low):
        assert relief.dtype == np.float32
        assert float(relief.min()) >= 0.0
        assert float(relief.max()) <= 1.0
    assert np.mean(low == 0.0) > 3 * np.mean(high == 0.0)
    assert np.mean(low == 0.0) > 0.01


def test_pyramid_levels_are_area_means(small_terrain: Terrain) -> None:
    pyramid = shaded_pyramid(small_terrain, 22.0, 60.0)
    assert shaded_pyramid(small_terrain, 22.0, 60.0) is pyramid
    assert pyramid.levels == 6
    fine = pyramid.level(0).astype(np.float64)
    coarse = pyramid.level(2)
    assert coarse.shape == (128, 128)
    assert pyramid.pixel_m(2) == 8.0
    assert float(coarse[5, 7]) == pytest.approx(float(fine[20:24, 28:32].mean()), abs=1e-6)


def test_camera_image_centre_tracks_position(small_terrain: Terrain) -> None:
    pyramid = shaded_pyramid(small_terrain, 22.0, 60.0)
    agl_m = 512.0
    g_m = 2.0 * agl_m / 256  # 4 m/px
    base = render_camera(pyramid, 10.0, -20.0, agl_m)
    assert base.shape == (256, 256)
    assert base.dtype == np.float32
    kx, ky = 7, -5
    moved = render_camera(pyramid, 10.0 + kx * g_m, -20.0 + ky * g_m, agl_m)
    # The vehicle moved by (kx, ky) pixels, so the scene moved by (-kx, -ky) in the image.
    shifts = {}
    for dy in range(-8, 9):
        for dx in range(-8, 9):
            a = base[max(dy, 0) : 256 + min(dy, 0), max(dx, 0) : 256 + min(dx, 0)]
            b = moved[max(-dy, 0) : 256 + min(-dy, 0), max(-dx, 0) : 256 + min(-dx, 0)]
            shifts[(dx, dy)] = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert max(shifts, key=lambda k: shifts[k]) == (kx, ky)
    assert shifts[(kx, ky)] > 0.999


def test_camera_footprint_matches_geometry(small_terrain: Terrain) -> None:
    # The image at 256 m AGL spans 512 m: pixel (i, j) is the relief at its ground point.
    pyramid = shaded_pyramid(small_terrain, 22.0, 60.0)
    img = render_camera(pyramid, 0.0, 0.0, 256.0)  # g = 2 m: level 0 exactly
    level0 = pyramid.level(0)
    # Pixel (0, 0) sees (-255, -255), the centre of 2 m cell (128, 128) of the ±512 m terrain.
    x0, y0 = pyramid.origin_m
    col = int((-255.0 - x0) / 2.0)
    row = int((-255.0 - y0) / 2.0)
    assert img[0, 0] == pytest.approx(float(level0[row, col]), abs=1e-6)
    assert img[255, 128] == pytest.approx(float(level0[row + 255, col + 128]), abs=1e-6)


def test_map_product_matches_docs(small_terrain: Terrain, tmp_path: Path) -> None:
    path = tmp_path / "map.npz"
    digest = build_map(small_terrain, path)
    assert digest == map_sha256(path)
    with np.load(path) as m:
        assert set(m.files) == {"scales", "img_40", "img_10", "img_4", "origin_40", "origin_10",
                                "origin_4", "dem", "dem_scale", "dem_origin"}
        assert m["scales"].tolist() == [40, 10, 4]
        # The small terrain is ±512 m: each scale covers the largest multiple of it inside.
        for scale, half_m in ((40, 480.0), (10, 510.0), (4, 512.0)):
            img = m[f"img_{scale}"]
            assert img.dtype == np.float32
            assert img.shape == (round(2 * half_m / scale),) * 2
            assert m[f"origin_{scale}"].dtype == np.float64
            assert m[f"origin_{scale}"].tolist() == [-half_m, -half_m]
            assert abs(float(img.mean())) < 1e-5
            assert float(img.std()) == pytest.approx(1.0, abs=1e-5)
        assert m["dem"].dtype == np.float32
        assert m["dem"].shape == (51, 51)
        assert float(m["dem_scale"]) == 20.0
        assert m["dem_origin"].tolist() == [-512.0, -512.0]
        # img_4 covers the whole small terrain: 2 × 2 means of the 2 m relief, normalised.
        relief = shade(small_terrain.heights, 2.0, 30.0, 40.0).astype(np.float64)
        pooled = relief.reshape(256, 2, 256, 2).mean(axis=(1, 3))
        pooled = (pooled - pooled.mean()) / pooled.std()
        np.testing.assert_allclose(m["img_4"], pooled, atol=1e-4)
    with zipfile.ZipFile(path) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    again = tmp_path / "again.npz"
    assert build_map(small_terrain, again) == digest
    assert again.read_bytes() == path.read_bytes()


def test_mission_map_shapes_and_size(mission_terrain: Terrain, tmp_path: Path) -> None:
    path = tmp_path / "map.npz"
    build_map(mission_terrain, path)
    with np.load(path) as m:
        assert m["img_40"].shape == (200, 200)
        assert m["img_10"].shape == (600, 600)
        assert m["img_4"].shape == (750, 750)
        assert m["origin_40"].tolist() == [-4000.0, -4000.0]
        assert m["origin_10"].tolist() == [-3000.0, -3000.0]
        assert m["origin_4"].tolist() == [-1500.0, -1500.0]
        assert m["dem"].shape == (400, 400)
        dem_origin = m["dem_origin"]
        # The DEM agrees with the terrain near the target (20 m cell means).
        j = int((0.0 - dem_origin[0]) / 20.0)
        assert abs(float(m["dem"][j, j]) - float(mission_terrain.height_m(10.0, 10.0))) < 5.0
    assert 3_000_000 < path.stat().st_size < 6_000_000


def test_pyramid_cache_is_bounded(small_terrain: Terrain) -> None:
    for elevation in (10.0, 11.0, 12.0):
        shaded_pyramid(small_terrain, elevation, 0.0)
    assert len(render._pyramids) <= 2


@pytest.mark.parametrize("elevation_deg", [0.0, -5.0, 90.0])
def test_sun_must_be_above_the_horizon_and_off_zenith(small_terrain: Terrain,
                                                      elevation_deg: float) -> None:
    with pytest.raises(ValueError, match="elevation"):
        shaded_pyramid(small_terrain, elevation_deg, 0.0)
