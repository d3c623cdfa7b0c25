from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil.ltd1.terrain import Terrain, TerrainParams, cache_dir, draw_craters, mean_pool
from tests.hil.conftest import SMALL


def test_same_seed_same_bytes_other_seed_differs(small_terrain: Terrain) -> None:
    again = Terrain.build(3, SMALL)
    assert again.heights.tobytes() == small_terrain.heights.tobytes()
    assert not np.array_equal(Terrain.build(4, SMALL).heights, small_terrain.heights)


def test_mission_terrain_shape_extent_and_target_height(mission_terrain: Terrain) -> None:
    assert mission_terrain.heights.shape == (4000, 4000)
    assert mission_terrain.heights.dtype == np.float32
    assert mission_terrain.extent_m == (-4000.0, 4000.0, -4000.0, 4000.0)
    assert abs(float(mission_terrain.height_m(0.0, 0.0))) < 1e-4
    assert abs(mission_terrain.height_at_m(0.0, 0.0)) < 1e-4


def test_cache_round_trip_is_identical_and_atomic(small_terrain: Terrain,
                                                  tmp_path: Path) -> None:
    built = Terrain.load(3, SMALL, cache=tmp_path)
    assert built.heights.tobytes() == small_terrain.heights.tobytes()
    assert [f.name for f in tmp_path.iterdir()] == [f"{small_terrain.key}.npy"]
    loaded = Terrain.load(3, SMALL, cache=tmp_path)
    assert loaded.heights.tobytes() == small_terrain.heights.tobytes()
    # A damaged cache file is rebuilt, not trusted.
    (tmp_path / f"{small_terrain.key}.npy").write_bytes(b"not an array")
    rebuilt = Terrain.load(3, SMALL, cache=tmp_path)
    assert rebuilt.heights.tobytes() == small_terrain.heights.tobytes()


def test_cache_dir_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLIGHTAI_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "ltd1"


def test_key_changes_with_parameters() -> None:
    assert TerrainParams().digest() != TerrainParams(roughness_m=1.0).digest()


def test_relief_is_cratered_with_texture_at_every_map_scale(mission_terrain: Terrain) -> None:
    h = mission_terrain.heights
    assert 20.0 < float(h.max() - h.min()) < 200.0
    # Texture at 40, 10 and 4 m/px: pooled heights vary from pixel to pixel.
    for factor in (20, 5, 2):
        pooled = mean_pool(h, factor).astype(np.float64)
        slope = np.diff(pooled, axis=1) / (factor * mission_terrain.resolution_m)
        assert float(np.std(slope)) > 0.01
    # Not periodic: the autocorrelation of a line has no strong secondary peak.
    line = h[2000].astype(np.float64) - h[2000].mean()
    spectrum = np.abs(np.fft.rfft(line)) ** 2
    auto = np.fft.irfft(spectrum)
    assert float(np.max(auto[50:1950]) / auto[0]) < 0.9


def test_crater_population_follows_the_power_law() -> None:
    params = TerrainParams()
    craters = draw_craters(np.random.default_rng(0), params)
    d = craters.diameter_m
    assert float(d.min()) >= 10.0
    assert float(d.max()) <= 400.0
    assert np.mean(d > 20.0) / np.mean(d > 40.0) == pytest.approx(4.0, rel=0.1)
    area_km2 = (8.0 + 0.8) ** 2
    assert np.sum(d > 100.0) / area_km2 == pytest.approx(2.5 * (1 - (100 / 400) ** 2), rel=0.2)
    assert 5 <= np.sum(d > 300.0) <= 60  # a few large ones
    assert np.all(np.abs(craters.centre_m) <= 4400.0)


def test_craters_are_bowls_with_raised_rims() -> None:
    params = TerrainParams(size_px=1000, roughness_m=0.0)
    terrain = Terrain.build(5, params)
    craters = draw_craters(np.random.default_rng(np.random.SeedSequence(5).spawn(2)[1]), params)
    inside = np.all(np.abs(craters.centre_m) < 700.0, axis=1)
    k = int(np.argmax(np.where(inside, craters.diameter_m, 0.0)))
    (x, y), d = craters.centre_m[k], craters.diameter_m[k]
    floor = float(terrain.height_m(x, y))
    rim = float(np.max(terrain.height_m(x + 0.5 * d * np.cos(np.linspace(0, 6.28, 64)),
                                        y + 0.5 * d * np.sin(np.linspace(0, 6.28, 64)))))
    far = float(np.median(terrain.heights))
    assert rim - floor > 0.03 * d  # deeper than the shallowest degraded crater
    assert rim > far


def test_height_is_bilinear_and_clamped(small_terrain: Terrain) -> None:
    h = small_terrain.heights
    x0, y0 = small_terrain.origin_m
    res = small_terrain.resolution_m
    # At a cell centre, the cell's value.
    assert float(small_terrain.height_m(x0 + 10.5 * res, y0 + 20.5 * res)) == pytest.approx(
        float(h[20, 10]), abs=1e-6)
    # Halfway between two centres along x, their mean.
    mid = small_terrain.height_m(x0 + 11.0 * res, y0 + 20.5 * res)
    assert float(mid) == pytest.approx(0.5 * (float(h[20, 10]) + float(h[20, 11])), abs=1e-5)
    # Far outside, the nearest corner.
    assert float(small_terrain.height_m(-1e6, -1e6)) == pytest.approx(float(h[0, 0]))
    xs = np.linspace(-600.0, 600.0, 37)
    ys = np.linspace(-550.0, 580.0, 37)
    vector = small_terrain.height_m(xs, ys)
    scalar = [small_terrain.height_at_m(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(vector, scalar, atol=1e-9)


def test_mean_pool_averages_blocks() -> None:
    a = np.arange(36, dtype=np.float32).reshape(6, 6)
    np.testing.assert_allclose(mean_pool(a, 3), [[7.0, 10.0], [25.0, 28.0]])
    assert mean_pool(a, 4).shape == (1, 1)


def test_odd_size_refused() -> None:
    with pytest.raises(ValueError, match="size_px"):
        Terrain.build(1, TerrainParams(size_px=101))
