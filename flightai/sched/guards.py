"""Output guards: checks on a task's outputs before they are published.

A tripped guard triggers the task's ``on_guard`` policy, exactly as an
overrun triggers ``on_overrun``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from flightai.config.schema import GuardConfig

_SMALL = 64  # elements: up to this, finite/min/max are checked on Python floats


class Guard(Protocol):
    """Checks one output value; returns a reason when it must not be published."""

    signal: str

    def check(self, value: npt.NDArray[np.generic],
              previous: npt.NDArray[np.generic] | None) -> str | None:
        """None when ``value`` may be published, else a short reason."""
        ...


class OutputGuard:
    """NaN/Inf, range and rate-of-change limits from a ``[[guards]]`` entry."""

    def __init__(self, config: GuardConfig) -> None:
        self.signal = config.signal
        self._config = config

    def check(self, value: npt.NDArray[np.generic],
              previous: npt.NDArray[np.generic] | None) -> str | None:
        """Apply the configured checks in order: finite, min, max, max_step."""
        c = self._config
        if c.finite and value.dtype.kind == "f" and value.size <= _SMALL:
            # Small arrays (most guarded signals): Python floats are exact copies of the
            # elements and, once all are finite, min() and max() are the numpy answer,
            # at a third of the cost of the ufunc calls.
            flat = (value if value.ndim == 1 else value.ravel()).tolist()
            if not all(map(math.isfinite, flat)):
                return "non-finite value"
            if c.min is not None and flat and (lowest := min(flat)) < c.min:
                return f"below min {c.min:g} (lowest {lowest + 0.0:g})"  # -0 reads 0
            if c.max is not None and flat and (highest := max(flat)) > c.max:
                return f"above max {c.max:g} (highest {highest + 0.0:g})"
            return None if c.max_step is None else self._step(value, previous)
        if c.finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            return "non-finite value"
        if c.min is None and c.max is None and c.max_step is None:
            return None
        numeric = value.astype(np.float64)
        if c.min is not None and (numeric < c.min).any():
            return f"below min {c.min:g} (lowest {float(np.min(numeric)) + 0.0:g})"
        if c.max is not None and (numeric > c.max).any():
            return f"above max {c.max:g} (highest {float(np.max(numeric)) + 0.0:g})"
        return self._step(value, previous)

    def _step(self, value: npt.NDArray[np.generic],
              previous: npt.NDArray[np.generic] | None) -> str | None:
        """The ``max_step`` check against the previous computed value, if any."""
        max_step = self._config.max_step
        if max_step is not None and previous is not None:
            step = float(np.max(np.abs(value.astype(np.float64) - previous.astype(np.float64))))
            if step > max_step:
                return f"step {step:g} above max_step {max_step:g}"
        return None
