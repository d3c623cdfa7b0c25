"""The frame loop's fast paths against the plain computations they replace."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flightai.config.schema import GuardConfig
from flightai.sched.guards import OutputGuard
from flightai.sched.health import Ring


def _reference_check(config: GuardConfig, value: np.ndarray, previous: np.ndarray | None
                     ) -> str | None:
    """The guard's contract written with numpy alone (as before the small-array path; a
    zero's sign is not reported: which of 0 and -0 is "the lowest" is arbitrary)."""
    if config.finite and value.dtype.kind == "f" and not np.isfinite(value).all():
        return "non-finite value"
    numeric = value.astype(np.float64)
    if config.min is not None and (numeric < config.min).any():
        return f"below min {config.min:g} (lowest {float(np.min(numeric)) + 0.0:g})"
    if config.max is not None and (numeric > config.max).any():
        return f"above max {config.max:g} (highest {float(np.max(numeric)) + 0.0:g})"
    if config.max_step is not None and previous is not None:
        step = float(np.max(np.abs(numeric - previous.astype(np.float64))))
        if step > config.max_step:
            return f"step {step:g} above max_step {config.max_step:g}"
    return None


_BOUND = st.none() | st.floats(-100, 100)


@settings(max_examples=400, deadline=None)
@given(dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       shape=st.sampled_from([(1,), (3,), (2, 3), (64,), (65,), (9, 9)]),
       data=st.data(), finite=st.booleans(), low=_BOUND, high=_BOUND,
       max_step=st.none() | st.floats(0, 50))
def test_guard_fast_path_gives_the_numpy_answer(dtype, shape, data, finite, low, high,
                                                 max_step) -> None:  # type: ignore[no-untyped-def]
    width = 8 * np.dtype(dtype).itemsize
    value = data.draw(hnp.arrays(dtype, shape, elements=st.floats(width=width)))
    previous = data.draw(st.none() | hnp.arrays(dtype, shape, elements=st.floats(-50, 50,
                                                                                width=16)))
    config = GuardConfig("y", finite=finite, min=low, max=high, max_step=max_step)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = _reference_check(config, value, previous)
        assert OutputGuard(config).check(value, previous) == expected


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-(2**62), 2**62), max_size=40),
       size=st.integers(1, 12), clear_at=st.none() | st.integers(0, 40))
def test_ring_keeps_the_last_values_and_their_lower_percentiles(values, size, clear_at
                                                                ) -> None:  # type: ignore[no-untyped-def]
    ring, reference = Ring(size), deque[int](maxlen=size)
    for i, value in enumerate(values):
        if i == clear_at:
            ring.clear()
            reference.clear()
        ring.append(value)
        reference.append(value)
    assert len(ring) == len(reference)
    if reference:
        expected = np.percentile(np.array(reference), [50, 99], method="lower")
        assert ring.p50_p99() == (int(expected[0]), int(expected[1]))
    else:
        assert ring.p50_p99() == (0, 0)


def test_ring_refuses_what_int64_cannot_hold() -> None:
    with pytest.raises(OverflowError):
        Ring(4).append(2**63)
