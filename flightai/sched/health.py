"""Modes, per-task counters, events: the runtime's health as plain values.

Wall-clock figures here (``wall_*``) are telemetry only: no decision that
changes outputs reads them, except an overrun, which is itself recorded.
"""

from __future__ import annotations

import array
import enum
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from flightai.timebase import NS_PER_S


class Mode(enum.Enum):
    """Runtime modes. SAFE is entered on configured triggers and left only by command."""

    STARTUP = "STARTUP"
    READY = "READY"
    NOMINAL = "NOMINAL"
    SAFE = "SAFE"


class Severity(enum.IntEnum):
    """Event severity, ordered."""

    INFO = 0
    WARNING = 1
    ERROR = 2


class Reject(enum.Enum):
    """Why an input sample was refused (counted, never fatal)."""

    UNKNOWN_TOPIC = "unknown_topic"
    NOT_AN_INPUT = "not_an_input"
    BAD_DTYPE = "bad_dtype"
    BAD_SHAPE = "bad_shape"
    FUTURE_TIMESTAMP = "future_timestamp"
    OUT_OF_ORDER = "out_of_order"
    STALE = "stale"


@dataclass(frozen=True)
class Event:
    """Something the operator should know, at a logical instant."""

    t_ns: int
    severity: Severity
    kind: str
    task: str = ""
    detail: str = ""


_RING = 1024


class Ring:
    """The last ``size`` integers added, and their order statistics kept up to date.

    The frame thread adds an execution time per job and a lateness per frame;
    each :meth:`append` also keeps a sorted copy of the window (two bisections
    and a short ``memmove``, about a microsecond), so :meth:`p50_p99` is two
    index reads. Sorting or partitioning the window at each health snapshot
    instead cost the frame that published health 20 to 40 us (numpy's
    partition, cold after a hundred frames): constant work per job rather than
    a burst every health period.
    """

    __slots__ = ("_count", "_next", "_size", "_sorted", "_values")

    def __init__(self, size: int = _RING) -> None:
        self._values = array.array("q", bytes(8 * size))
        self._sorted: list[int] = []
        self._size = size
        self._next = 0
        self._count = 0

    def append(self, value: int) -> None:
        """Add ``value``, replacing the oldest once full."""
        i = self._next
        values, ordered = self._values, self._sorted
        oldest = values[i]
        values[i] = value  # raises OverflowError beyond int64, before anything has changed
        if self._count == self._size:
            del ordered[bisect_left(ordered, oldest)]
        else:
            self._count += 1
        insort(ordered, value)
        self._next = i + 1 if i + 1 < self._size else 0

    def __len__(self) -> int:
        return self._count

    def clear(self) -> None:
        """Forget every value."""
        self._next = self._count = 0
        self._sorted.clear()

    def p50_p99(self) -> tuple[int, int]:
        """Median and 99th percentile, the lower value at each rank; zeros when empty.

        The same values as ``np.percentile(..., method="lower")`` over the window.
        """
        n = self._count
        if not n:
            return 0, 0
        ordered = self._sorted
        return ordered[(n - 1) // 2], ordered[(99 * (n - 1)) // 100]


@dataclass
class TaskHealth:
    """Counters and wall-clock execution statistics of one task."""

    releases: int = 0
    published: int = 0
    held: int = 0
    skipped: int = 0
    overruns: int = 0
    busy_skips: int = 0
    guard_trips: int = 0
    errors: int = 0
    fallback_runs: int = 0
    on_fallback: bool = False
    consecutive_overruns: int = 0
    wall_exec_last_ns: int = 0
    wall_exec_max_ns: int = 0
    _wall_exec_ring: Ring = field(default_factory=Ring, repr=False)

    def record_exec(self, wall_exec_ns: int) -> None:
        """Add one execution time (telemetry)."""
        self.wall_exec_last_ns = wall_exec_ns
        self.wall_exec_max_ns = max(self.wall_exec_max_ns, wall_exec_ns)
        self._wall_exec_ring.append(wall_exec_ns)

    def wall_exec_p50_p99_ns(self) -> tuple[int, int]:
        """Median and p99 of the last 1024 execution times (0 if none)."""
        return self._wall_exec_ring.p50_p99()

    def snapshot(self) -> dict[str, int | bool]:
        """The counters as a flat dict (for telemetry and summaries)."""
        p50, p99 = self.wall_exec_p50_p99_ns()
        return {
            "releases": self.releases, "published": self.published, "held": self.held,
            "skipped": self.skipped, "overruns": self.overruns, "busy_skips": self.busy_skips,
            "guard_trips": self.guard_trips, "errors": self.errors,
            "fallback_runs": self.fallback_runs, "on_fallback": self.on_fallback,
            "wall_exec_last_ns": self.wall_exec_last_ns,
            "wall_exec_p50_ns": p50,
            "wall_exec_p99_ns": p99,
            "wall_exec_max_ns": self.wall_exec_max_ns,
        }


class EventLog:
    """Keeps recent events and throttles repeats of one (kind, task) to one per second.

    Args:
        capacity: events kept for inspection.
        throttle_ns: minimum logical time between two kept events of the same kind and task.
    """

    def __init__(self, capacity: int = 1000, throttle_ns: int = NS_PER_S) -> None:
        self.recent: deque[Event] = deque(maxlen=capacity)
        self.suppressed = 0
        self.total = 0
        self._throttle_ns = throttle_ns
        self._last_ns: dict[tuple[str, str], int] = {}

    def add(self, event: Event) -> bool:
        """Keep ``event`` unless throttled; return whether it was kept."""
        self.total += 1
        key = (event.kind, event.task)
        last = self._last_ns.get(key)
        if last is not None and event.t_ns - last < self._throttle_ns:
            self.suppressed += 1
            return False
        self._last_ns[key] = event.t_ns
        self.recent.append(event)
        return True


@dataclass
class Health:
    """Everything the runtime reports about itself."""

    mode: Mode = Mode.STARTUP
    frames: int = 0
    frame_slips: int = 0
    wall_lateness_max_ns: int = 0
    wall_lateness_ring: Ring = field(default_factory=Ring, repr=False)
    tick_timeouts: int = 0
    input_timeouts: int = 0
    inputs_accepted: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, TaskHealth] = field(default_factory=dict)
    events: EventLog = field(default_factory=EventLog)

    def record_lateness(self, wall_lateness_ns: int) -> None:
        """Add how late (wall time) a frame started: release jitter telemetry."""
        self.wall_lateness_max_ns = max(self.wall_lateness_max_ns, wall_lateness_ns)
        self.wall_lateness_ring.append(wall_lateness_ns)

    def reject(self, reason: Reject) -> None:
        """Count one refused input by reason."""
        self.rejects[reason.value] = self.rejects.get(reason.value, 0) + 1

    def reset_counters(self) -> None:
        """Zero every counter and statistic; mode and latches are kept."""
        self.frames = self.frame_slips = self.tick_timeouts = self.inputs_accepted = 0
        self.input_timeouts = 0
        self.wall_lateness_max_ns = 0
        self.wall_lateness_ring.clear()
        self.rejects = {}
        for name, task in self.tasks.items():
            self.tasks[name] = TaskHealth(on_fallback=task.on_fallback)

    def snapshot(self) -> dict[str, object]:
        """A plain-data view (for telemetry, summaries and tests)."""
        late_p50, late_p99 = self.wall_lateness_ring.p50_p99()
        return {
            "mode": self.mode.value, "frames": self.frames, "frame_slips": self.frame_slips,
            "wall_lateness_p50_ns": late_p50,
            "wall_lateness_p99_ns": late_p99,
            "wall_lateness_max_ns": self.wall_lateness_max_ns,
            "tick_timeouts": self.tick_timeouts, "input_timeouts": self.input_timeouts,
            "inputs_accepted": self.inputs_accepted,
            "rejects": dict(self.rejects), "events": self.events.total,
            "events_suppressed": self.events.suppressed,
            "tasks": {name: t.snapshot() for name, t in self.tasks.items()},
        }
