"""Campaign statistics: the Clopper–Pearson bound and the success criteria."""

from __future__ import annotations

import math

import pytest

from hil.ltd1.criteria import FlightRecord
from hil.ltd1.summary import failure_rate_upper_bound, summarize


def test_no_failures_gives_the_rule_of_three() -> None:
    assert failure_rate_upper_bound(0, 50) == pytest.approx(1 - 0.05 ** (1 / 50), rel=1e-9)
    assert failure_rate_upper_bound(0, 1000) == pytest.approx(3 / 1000, rel=0.01)


def test_bound_with_failures_matches_the_binomial_tail() -> None:
    bound = failure_rate_upper_bound(2, 50)
    tail = sum(math.comb(50, i) * bound**i * (1 - bound) ** (50 - i) for i in range(3))
    assert tail == pytest.approx(0.05, abs=1e-9)
    assert failure_rate_upper_bound(50, 50) == 1.0


def _record(seed: int, **changes: object) -> FlightRecord:
    base = dict(seed=seed, touchdown=True, t_touchdown_ns=83 * 10**9, vertical_speed_mps=1.5,
                horizontal_speed_mps=0.2, landing_error_m=5.0, propellant_kg=65.0,
                early_contact=False, nav_error_m=5.0, hard_overruns=0, overruns=0)
    base.update(changes)
    return FlightRecord(**base)  # type: ignore[arg-type]


def test_each_criterion_fails_a_descent_with_its_reason() -> None:
    assert _record(1).success
    cases = {"vertical_speed_mps": 2.1, "horizontal_speed_mps": 1.2, "landing_error_m": 51.0,
             "propellant_kg": 101.0, "early_contact": True, "nav_error_m": 31.0,
             "hard_overruns": 1, "touchdown": False}
    for key, value in cases.items():
        failures = _record(1, **{key: value}).failures()
        assert len(failures) == 1, (key, failures)


def test_summary_counts_and_lists_failures() -> None:
    summary = summarize([_record(1), _record(2, landing_error_m=70.0), _record(3)])
    assert summary["runs"] == 3 and summary["successes"] == 2
    assert summary["landing_error_m"]["max"] == 70.0
    assert list(summary["failures"]) == ["2"]
