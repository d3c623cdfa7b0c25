"""Exact small-sample statistics for campaigns: binomial intervals, McNemar, sign-test intervals.

All exact and deterministic (no resampling), so a report is the same bytes
whenever the cases are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hil.ltd1.summary import failure_rate_upper_bound


def clopper_pearson(successes: int, runs: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval of a success probability.

    Each side is the one-sided bound at ``(1 + confidence) / 2``
    (:func:`hil.ltd1.summary.failure_rate_upper_bound` applied to the successes
    for the upper end, to the failures for the lower end).
    """
    side = (1.0 + confidence) / 2
    upper = failure_rate_upper_bound(successes, runs, side)
    lower = 1.0 - failure_rate_upper_bound(runs - successes, runs, side)
    return (max(0.0, lower), min(1.0, upper))


def binomial_tail(k: int, n: int) -> float:
    """P(X ≤ k) for X ~ Binomial(n, 1/2), exactly."""
    return float(sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def mcnemar_exact(only_baseline: int, only_candidate: int) -> float:
    """Two-sided exact McNemar p-value from the two kinds of discordant pairs.

    Args:
        only_baseline: pairs where only the baseline had the property (e.g. succeeded).
        only_candidate: pairs where only the candidate had it.

    Returns:
        ``min(1, 2 P(X ≤ min(b, c)))``, X ~ Binomial(b + c, 1/2); 1 with no discordant pair.
    """
    n = only_baseline + only_candidate
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_tail(min(only_baseline, only_candidate), n))


def sign_test_interval(differences: Sequence[float],
                       confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Distribution-free interval for the median of paired differences (order statistics).

    The interval is ``[d(k), d(n+1-k)]`` of the sorted differences with the
    largest ``k`` whose coverage ``1 - 2 P(X ≤ k-1)`` (X ~ Binomial(n, 1/2)) is at
    least ``confidence``; ``(None, None)`` (unbounded) when even ``[min, max]``
    falls short, i.e. fewer than 6 pairs at 95 %.
    """
    d = sorted(differences)
    n = len(d)
    best = 0
    for k in range(1, n // 2 + 1):
        if 1.0 - 2 * binomial_tail(k - 1, n) >= confidence:
            best = k
    if best == 0:
        return (None, None)
    return (d[best - 1], d[n - best])
