"""Python task bodies used by the tests, loaded through ``file.py:name`` targets."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

Arrays = Mapping[str, npt.NDArray[np.generic]]


def add_one(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """out = x + 1."""
    return {"y": (inputs["x"] + 1).astype(np.float32)}


def negate(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """The classical stand-in: out = -x."""
    return {"y": (-inputs["x"]).astype(np.float32)}


def wrong_shape(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Returns an output of the wrong shape."""
    return {"y": np.zeros(7, np.float32)}


def not_a_mapping(inputs: Arrays) -> list[npt.NDArray[np.float32]]:
    """Returns its outputs as a list instead of a mapping of port names."""
    return [np.zeros(1, np.float32)]


def missing_port(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Returns a port the task does not declare, and not the one it does."""
    return {"z": np.zeros(1, np.float32)}


class Counter:
    """Stateful: outputs how many times it ran plus its input, so skipped jobs show."""

    def __init__(self, start: int = 0) -> None:
        self.calls = start

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
        self.calls += 1
        return {"y": (inputs["x"] + self.calls).astype(np.float32)}


class Faulty:
    """Counts calls; returns NaN, raises, or sleeps at chosen call numbers (1-based)."""

    def __init__(self, nan_at: list[int] | None = None, raise_at: list[int] | None = None,
                 sleep_at: list[int] | None = None, sleep_ms: int = 0,
                 big_at: list[int] | None = None) -> None:
        self.calls = 0
        self._nan_at = set(nan_at or [])
        self._raise_at = set(raise_at or [])
        self._sleep_at = set(sleep_at or [])
        self._big_at = set(big_at or [])
        self._sleep_s = sleep_ms / 1000

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
        self.calls += 1
        if self.calls in self._sleep_at:
            time.sleep(self._sleep_s)
        if self.calls in self._raise_at:
            raise RuntimeError(f"injected failure at call {self.calls}")
        y = (inputs["x"] + self.calls).astype(np.float32)
        if self.calls in self._nan_at:
            y = np.full_like(y, np.nan)
        if self.calls in self._big_at:
            y = np.full_like(y, 1e6)
        return {"y": y}


class Ramp:
    """An input source: signal ``x`` = [t in ms] every ``every_ms``, measured at its time."""

    def __init__(self, every_ms: int = 10, signal: str = "x") -> None:
        self._every_ns = every_ms * 1_000_000
        self._next_ns = 0
        self._signal = signal

    def poll(self, t_ns: int) -> list[object]:
        from flightai.sched.io import Sample

        out: list[object] = []
        while self._next_ns <= t_ns:
            value = np.array([self._next_ns / 1e6], dtype=np.float32)
            out.append(Sample(self._signal, self._next_ns, value))
            self._next_ns += self._every_ns
        return out


def time_tags(inputs: Arrays) -> dict[str, npt.NDArray[np.int64]]:
    """Echoes the time tags it reads: [input x measured at, output y published at]."""
    return {"tags": np.concatenate([inputs["x_t"], inputs["y_t"]]).astype(np.int64)}


class DataFile:
    """Outputs the first byte of a data file found beside the mission file."""

    def __init__(self, name: str, mission_dir: object) -> None:
        from pathlib import Path

        self._byte = Path(str(mission_dir), name).read_bytes()[0]

    def run(self, inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
        return {"y": np.array([self._byte], np.float32)}


def layout(inputs: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Ones where the input is C-contiguous, zeros where it is not."""
    return {"y": np.full((2, 3), float(inputs["x"].flags.c_contiguous), np.float32)}
