"""Clocks pace the executive from one logical instant (integer ns) to the next.

``WallClock`` maps mission time onto ``time.monotonic_ns`` and waits by
sleeping until a margin before the instant, then spinning (``time.sleep``
alone wakes ~50-100 us late, see PERF-NOTES). ``FastClock`` never waits.
``ExternalClock`` waits for ticks fed by another thread (a simulator or a
hardware timer over the bus); a tick missing past its timeout is reported
through a callback, never a silent stall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from flightai.timebase import NS_PER_MS, NS_PER_S, NS_PER_US


class Clock(Protocol):
    """What the executive needs from a clock."""

    @property
    def real_time(self) -> bool:
        """True when deadlines pass whether or not jobs are done (overruns possible)."""
        ...

    def start(self, t0_ns: int) -> None:
        """Anchor mission time ``t0_ns`` to now; called once before the first frame."""
        ...

    def wait_until(self, t_ns: int) -> bool:
        """Block until mission time ``t_ns``; False when stopped while waiting."""
        ...

    def lateness_ns(self, t_ns: int) -> int:
        """How far past ``t_ns`` the clock is now (telemetry only; 0 when virtual)."""
        ...

    def stop(self) -> None:
        """Wake any waiter; later waits return False. Thread-safe."""
        ...


class FastClock:
    """As fast as possible: every instant is reached at once; jobs are awaited."""

    real_time = False

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def start(self, t0_ns: int) -> None:
        """Nothing to anchor."""

    def wait_until(self, t_ns: int) -> bool:
        """Return at once unless stopped."""
        return not self._stopped.is_set()

    def lateness_ns(self, t_ns: int) -> int:
        """Always on time."""
        return 0

    def stop(self) -> None:
        """Make later waits return False."""
        self._stopped.set()


class WallClock:
    """Real time on the monotonic clock, sleep-then-spin to each instant.

    Args:
        spin_ns: how long before each instant to stop sleeping and spin. Larger
            is more precise and burns more CPU; 0 sleeps only.
    """

    real_time = True

    def __init__(self, spin_ns: int = 1000 * NS_PER_US) -> None:
        self._spin_ns = spin_ns
        self._base_ns = 0
        self._stopped = threading.Event()

    def start(self, t0_ns: int) -> None:
        """Mission time ``t0_ns`` is now."""
        self._base_ns = time.monotonic_ns() - t0_ns

    def wait_until(self, t_ns: int) -> bool:
        """Sleep until ``spin_ns`` before the instant, then spin; False if stopped."""
        target = self._base_ns + t_ns
        while True:
            if self._stopped.is_set():
                return False
            remaining = target - time.monotonic_ns()
            if remaining <= self._spin_ns:
                break
            # Sleep in slices so stop() is seen within 50 ms even on slow frames.
            self._stopped.wait(min(remaining - self._spin_ns, 50_000_000) / NS_PER_S)
        while time.monotonic_ns() < target:
            pass
        return not self._stopped.is_set()

    def lateness_ns(self, t_ns: int) -> int:
        """Nanoseconds past ``t_ns`` now (negative when early)."""
        return time.monotonic_ns() - (self._base_ns + t_ns)

    def stop(self) -> None:
        """Wake the waiter."""
        self._stopped.set()


class ExternalClock:
    """Mission time advanced by ticks from outside (lockstep or hardware timer).

    Args:
        tick_timeout_ns: how long (wall time) a wait may go without a tick before
            ``on_timeout`` is called; the wait then goes on. Waiting for the very
            first tick never times out: until then the runtime is only READY.
        real_time: False for lockstep with a simulator (jobs are awaited at their
            deadlines), True for a hardware timer (late jobs overrun).
        on_timeout: called with the awaited instant each time the timeout passes.
    """

    def __init__(self, tick_timeout_ns: int, real_time: bool = False,
                 on_timeout: Callable[[int], None] | None = None) -> None:
        self.real_time = real_time
        self._timeout_ns = tick_timeout_ns
        self._on_timeout = on_timeout
        self._cond = threading.Condition()
        self._now_ns: int | None = None
        self._stopped = False
        self._last_tick_wall_ns = 0
        self._pump: Callable[[int], None] | None = None

    def set_pump(self, pump: Callable[[int], None]) -> None:
        """Let the waiting thread fetch ticks itself, with no thread hand-off.

        ``pump(max_wait_ns)`` waits up to that long for input and passes any tick
        to :meth:`tick`; :meth:`wait_until` calls it in slices of at most 50 ms.
        """
        self._pump = pump

    def set_timeout_handler(self, on_timeout: Callable[[int], None]) -> None:
        """Install the callback for missing ticks (the executive does this)."""
        self._on_timeout = on_timeout

    def tick(self, t_ns: int) -> None:
        """Advance mission time to ``t_ns``; earlier or equal ticks are ignored."""
        with self._cond:
            if self._now_ns is None or t_ns > self._now_ns:
                self._now_ns = t_ns
                self._last_tick_wall_ns = time.monotonic_ns()
                self._cond.notify_all()

    @property
    def now_ns(self) -> int | None:
        """The last tick received (None before the first)."""
        return self._now_ns

    def start(self, t0_ns: int) -> None:
        """Nothing to anchor: time is whatever the ticks say."""

    def wait_until(self, t_ns: int) -> bool:
        """Block until a tick at or past ``t_ns``; report each timeout; False if stopped."""
        if self._pump is not None:
            return self._pump_until(t_ns, self._pump)
        with self._cond:
            while not self._stopped and (self._now_ns is None or self._now_ns < t_ns):
                timed_out = not self._cond.wait(self._timeout_ns / NS_PER_S)
                started = self._now_ns is not None  # before the first tick we are only waiting
                if timed_out and started and self._on_timeout is not None and not self._stopped:
                    self._on_timeout(t_ns)
            return not self._stopped

    def _pump_until(self, t_ns: int, pump: Callable[[int], None]) -> bool:
        waited_from = time.monotonic_ns()
        while not self._stopped and (self._now_ns is None or self._now_ns < t_ns):
            silent_since = max(waited_from, self._last_tick_wall_ns)
            remaining = silent_since + self._timeout_ns - time.monotonic_ns()
            if remaining <= 0:
                if self._now_ns is not None and self._on_timeout is not None:
                    self._on_timeout(t_ns)
                waited_from = time.monotonic_ns()
                continue
            pump(min(remaining, 50 * NS_PER_MS))
        return not self._stopped

    def lateness_ns(self, t_ns: int) -> int:
        """Wall time since the tick that released ``t_ns`` (telemetry)."""
        return time.monotonic_ns() - self._last_tick_wall_ns if self.real_time else 0

    def stop(self) -> None:
        """Wake the waiter."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
