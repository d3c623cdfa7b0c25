"""Every overrun policy and the output guard, against the same contract."""

from __future__ import annotations

import numpy as np
import pytest

from flightai.config.schema import GuardConfig, Policy
from flightai.sched.guards import OutputGuard
from flightai.sched.policies import POLICIES

LAST = {"y": np.array([1.0], np.float32)}
FALLBACK_OUT = {"y": np.array([-1.0], np.float32)}


@pytest.mark.parametrize("policy", list(Policy))
def test_contract_every_policy_publishes_last_fallback_or_nothing(policy: Policy) -> None:
    calls: list[int] = []

    def run_fallback():  # type: ignore[no-untyped-def]
        calls.append(1)
        return FALLBACK_OUT

    resolution = POLICIES[policy].resolve(LAST, run_fallback)
    assert resolution.outputs in (LAST, FALLBACK_OUT, None)
    assert resolution.engage_fallback == (policy is Policy.FALLBACK)
    assert bool(calls) == (policy is Policy.FALLBACK)
    expected = {Policy.HOLD: (LAST, "held"), Policy.SKIP: (None, "skipped"),
                Policy.FALLBACK: (FALLBACK_OUT, "fallback")}[policy]
    assert (resolution.outputs, resolution.status) == expected


def test_fallback_policy_holds_when_the_fallback_fails_too() -> None:
    resolution = POLICIES[Policy.FALLBACK].resolve(LAST, lambda: None)
    assert (resolution.outputs, resolution.status, resolution.engage_fallback) == (
        LAST, "held", True)


@pytest.mark.parametrize(("config", "value", "previous", "reason"), [
    (GuardConfig("y"), [np.nan], None, "non-finite value"),
    (GuardConfig("y"), [np.inf], None, "non-finite value"),
    (GuardConfig("y", finite=False), [np.inf], None, None),
    (GuardConfig("y", min=-1.0), [-2.0], None, "below min -1 (lowest -2)"),
    (GuardConfig("y", max=1.0), [0.5, 3.0], None, "above max 1 (highest 3)"),
    (GuardConfig("y", max_step=0.5), [1.0], [0.0], "step 1 above max_step 0.5"),
    (GuardConfig("y", max_step=0.5), [1.0], None, None),
    (GuardConfig("y", min=-1.0, max=1.0, max_step=2.0), [0.9], [-0.9], None),
])
def test_output_guard(config, value, previous, reason) -> None:  # type: ignore[no-untyped-def]
    prev = None if previous is None else np.array(previous, np.float32)
    assert OutputGuard(config).check(np.array(value, np.float32), prev) == reason


def test_integer_outputs_skip_the_finite_check_but_keep_ranges() -> None:
    guard = OutputGuard(GuardConfig("y", max=10.0))
    assert guard.check(np.array([3], np.int32), None) is None
    assert guard.check(np.array([30], np.int32), None) == "above max 10 (highest 30)"
