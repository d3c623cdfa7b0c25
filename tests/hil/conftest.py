"""Terrains shared by the simulator tests: a small one (fast) and the mission one (cached)."""

from __future__ import annotations

import pytest

from hil.ltd1.terrain import Terrain, TerrainParams

SMALL = TerrainParams(size_px=512)  # 1 km × 1 km, same statistics as the mission terrain


@pytest.fixture(scope="session")
def small_terrain() -> Terrain:
    return Terrain.build(3, SMALL)


@pytest.fixture(scope="session")
def mission_terrain() -> Terrain:
    """The 8 km mission terrain from the user's cache (built there once, about 1 s of CPU)."""
    return Terrain.load(1)
