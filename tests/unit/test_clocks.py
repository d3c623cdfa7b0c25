"""Every clock passes the same contract; then each one's own behaviour."""

from __future__ import annotations

import threading
import time

import pytest

from flightai.sched.clock import Clock, ExternalClock, FastClock, WallClock
from flightai.timebase import NS_PER_MS


def _external_ticking() -> ExternalClock:
    clock = ExternalClock(1_000 * NS_PER_MS)

    def feed() -> None:
        for t in range(0, 200 * NS_PER_MS, NS_PER_MS):
            clock.tick(t)

    threading.Thread(target=feed, daemon=True).start()
    return clock


CLOCKS = {
    "fast": FastClock,
    "wall": lambda: WallClock(spin_ns=100_000),
    "external": _external_ticking,
}


@pytest.fixture(params=sorted(CLOCKS))
def clock(request: pytest.FixtureRequest) -> Clock:
    made: Clock = CLOCKS[request.param]()
    return made


def test_contract_instants_are_reached_in_order(clock: Clock) -> None:
    clock.start(0)
    for t in range(0, 20 * NS_PER_MS, 2 * NS_PER_MS):
        assert clock.wait_until(t) is True
        assert clock.lateness_ns(t) >= 0 or not clock.real_time


def test_contract_stop_wakes_a_waiter_and_later_waits_return_false(clock: Clock) -> None:
    clock.start(0)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(clock.wait_until(10**12)))
    waiter.start()
    time.sleep(0.05)
    clock.stop()
    waiter.join(2)
    assert not waiter.is_alive()
    if not isinstance(clock, FastClock):  # a fast clock reaches every instant at once
        assert result == [False]
    assert clock.wait_until(0) is False


def test_wall_clock_never_wakes_early() -> None:
    clock = WallClock(spin_ns=500_000)
    clock.start(0)
    for t in range(0, 30 * NS_PER_MS, 3 * NS_PER_MS):
        clock.wait_until(t)
        assert clock.lateness_ns(t) >= 0


def test_external_clock_ignores_old_ticks_and_reports_timeouts() -> None:
    timeouts: list[int] = []
    clock = ExternalClock(10 * NS_PER_MS, on_timeout=timeouts.append)
    clock.tick(5)
    clock.tick(3)
    assert clock.now_ns == 5
    assert clock.wait_until(5)
    threading.Timer(0.1, lambda: clock.tick(50)).start()
    assert clock.wait_until(50)
    assert timeouts and set(timeouts) == {50}
