"""Mission time: integer nanoseconds, with saturating sentinels.

No float seconds cross the scheduler. ``NEVER`` is before every instant and
``FOREVER`` after every instant; :func:`add_ns` saturates at both, so
``add_ns(FOREVER, 5) == FOREVER`` and ``add_ns(NEVER, -5) == NEVER``.
"""

from __future__ import annotations

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

NEVER = -(2**63)
FOREVER = 2**63 - 1


def add_ns(t_ns: int, delta_ns: int) -> int:
    """Return ``t_ns + delta_ns`` clamped to ``[NEVER, FOREVER]``; sentinels stay put.

    Examples: ``add_ns(10, 5) == 15``; ``add_ns(FOREVER, -1) == FOREVER``.
    """
    if t_ns in (NEVER, FOREVER):
        return t_ns
    return max(NEVER, min(FOREVER, t_ns + delta_ns))


def ms_to_ns(ms: int) -> int:
    """Convert whole milliseconds (config unit) to nanoseconds."""
    return ms * NS_PER_MS


def format_ns(t_ns: int) -> str:
    """Render an instant or duration for people: ``1.250 s``, ``20 ms``, ``35 us``."""
    if t_ns == FOREVER:
        return "forever"
    if t_ns == NEVER:
        return "never"
    if abs(t_ns) >= NS_PER_S:
        return f"{t_ns / NS_PER_S:.3f} s"
    if abs(t_ns) >= NS_PER_MS:
        return f"{_trimmed(t_ns / NS_PER_MS)} ms"
    return f"{_trimmed(t_ns / NS_PER_US)} us"


def _trimmed(value: float) -> str:
    """Three decimals at most, trailing zeros dropped: 20.001, 1.177, 20."""
    return f"{value:.3f}".rstrip("0").rstrip(".")
