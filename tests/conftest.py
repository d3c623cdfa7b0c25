"""Shared fixtures: small missions built as dicts, the example mission, tiny models."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flightai.config import MissionConfig, parse_mission

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ltd1-lite"
SUPPORT = Path(__file__).resolve().parent / "support" / "tasks.py"


def target(name: str) -> str:
    """A ``file.py:name`` target in tests/support/tasks.py."""
    return f"{SUPPORT}:{name}"


def base_mission(**runtime: Any) -> dict[str, Any]:
    """A one-task mission: input ``x`` (float32[1]) -> task ``t`` -> ``y``, 10 ms frame."""
    return {
        "mission": {"name": "test"},
        "runtime": {"minor_frame_ms": 10, "clock": "fast", "workers": 2, **runtime},
        "source": {"factory": target("Ramp"), "params": {"every_ms": 10}},
        "signals": [
            {"name": "x", "dtype": "float32", "shape": [1], "input": True},
            {"name": "y", "dtype": "float32", "shape": [1]},
        ],
        "tasks": [
            {"name": "t", "function": target("add_one"), "period_ms": 20,
             "inputs": {"x": "x"}, "outputs": {"y": "y"}},
        ],
    }


@pytest.fixture
def make_mission(tmp_path: Path) -> Callable[[dict[str, Any]], MissionConfig]:
    """Validate a mission dict with paths resolving from a temporary folder."""

    def make(data: dict[str, Any]) -> MissionConfig:
        return parse_mission(copy.deepcopy(data), tmp_path)

    return make


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A private copy of the ltd1-lite example (safe to edit)."""
    dest = tmp_path / "ltd1-lite"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest
