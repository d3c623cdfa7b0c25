"""Statistics over many flown descents: success rate with its bound, error distributions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hil.ltd1.criteria import FlightRecord


def failure_rate_upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound on the failure probability.

    The p at which seeing ``failures`` or fewer in ``runs`` has probability
    ``1 - confidence``; with no failures it is 1 − (1 − c)^(1/n), about 3/n at 95 %.
    """
    if runs <= 0:
        raise ValueError("runs must be positive")
    if failures >= runs:
        return 1.0
    alpha = 1.0 - confidence
    low, high = failures / runs, 1.0
    for _ in range(100):  # bisection: the binomial CDF falls as p rises
        mid = (low + high) / 2
        if _binomial_cdf(failures, runs, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def _binomial_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * log_p + (n - i) * log_q) for i in range(k + 1))


def _stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "max": float(a.max())}


def summarize(records: Sequence[FlightRecord]) -> dict[str, Any]:
    """Success rate, its 95 % bound, and the distributions LTD-1 judges by."""
    failed = [r for r in records if not r.success]
    return {
        "runs": len(records),
        "successes": len(records) - len(failed),
        "success_rate": (len(records) - len(failed)) / len(records),
        "failure_rate_upper_95": failure_rate_upper_bound(len(failed), len(records)),
        "landing_error_m": _stats([r.landing_error_m for r in records]),
        "nav_error_m": _stats([r.nav_error_m for r in records]),
        "vertical_speed_mps": _stats([r.vertical_speed_mps for r in records]),
        "horizontal_speed_mps": _stats([r.horizontal_speed_mps for r in records]),
        "propellant_kg": _stats([r.propellant_kg for r in records]),
        "overruns": sum(r.overruns for r in records),
        "learned_guidance_at_touchdown": sum(r.learned_guidance for r in records),
        "failures": {str(r.seed): r.failures() for r in failed},
    }
