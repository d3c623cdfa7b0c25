"""A recording's messages as time series: the values a verdict's selector reads.

Messages are decoded once per topic, on first use, and kept in recorded order.
Times are the messages' ``t_ns`` (mission time): the deadline instant of an
output, the frame instant of health and events, the measurement time of a
sensor sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from flightai.bus.wire import Message, WireError
from flightai.config.schema import MissionConfig
from flightai.timebase import NS_PER_S
from hil.record.reader import Recorded, Recording
from hil.record.recorder import TO_RUNTIME
from hil.verdict.spec import Condition, Instant, Selector, TimeRef

EVENT_TOPIC = "event"
HEALTH_TOPIC = "health"

Sample = tuple[int, Any]
"""(t_ns, value): a number (float) or a string."""


class SelectionError(Exception):
    """A selector does not fit the recording (a missing array, a bad index); the check fails."""


def fmt_t(t_ns: int) -> str:
    """A mission time for a person: ``t = 84.190 s``."""
    return f"t = {t_ns / NS_PER_S:.3f} s"


@dataclass(frozen=True)
class Event:
    """A runtime event (ICD 8.4)."""

    t_ns: int
    severity: str
    kind: str
    task: str
    detail: str

    def describe(self) -> str:
        """One line: time, severity, kind, task, detail."""
        task = f" task {self.task!r}" if self.task else ""
        return f"{fmt_t(self.t_ns)} {self.severity} {self.kind}{task}: {self.detail!r}"


class Streams:
    """Decoded views of one recording.

    Args:
        recording: the recording read.
    """

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._by_topic: dict[str, list[Recorded]] = {}
        for recorded in recording.messages:
            self._by_topic.setdefault(recorded.topic, []).append(recorded)
        self._decoded: dict[tuple[str, str | None], list[Message]] = {}
        self._config: MissionConfig | None = None

    def topics(self) -> list[str]:
        """Every topic with messages, sorted."""
        return sorted(self._by_topic)

    def messages(self, topic: str, direction: str | None = None) -> list[Message]:
        """The messages on ``topic`` (in ``direction``, if given), decoded, in recorded order.

        Raises:
            SelectionError: one of them is refused by the wire decoder.
        """
        key = (topic, direction)
        if key not in self._decoded:
            try:
                self._decoded[key] = [r.decode() for r in self._by_topic.get(topic, [])
                                      if direction is None or r.direction == direction]
            except WireError as exc:  # e.g. a corrupt sample a fault plan sent
                raise SelectionError(f"{topic}: a recorded message the wire decoder refuses "
                                     f"({exc})") from None
        return self._decoded[key]

    @cached_property
    def span(self) -> tuple[int, int]:
        """The first and last ``t_ns`` of the messages not sent to the runtime.

        Sensor samples are left out: their times are measurement times, which a
        faulty sender may set anywhere.
        """
        times = [m.t_ns for topic in self._by_topic if topic not in self._sent_only
                 for m in self.messages(topic)]
        return (min(times), max(times)) if times else (0, 0)

    @cached_property
    def _sent_only(self) -> set[str]:
        """Topics recorded only in direction ``to_runtime``."""
        return {topic for topic, recorded in self._by_topic.items()
                if all(r.direction == TO_RUNTIME for r in recorded)}

    @cached_property
    def events(self) -> list[Event]:
        """Every recorded runtime event, in order."""
        out = []
        for m in self.messages(EVENT_TOPIC):
            f = m.fields
            out.append(Event(m.t_ns, str(f.get("severity", "")), str(f.get("kind", "")),
                             str(f.get("task", "")), str(f.get("detail", ""))))
        return out

    def config(self) -> MissionConfig:
        """The recorded mission (``hil.replay.player.recorded_config``).

        Raises:
            SelectionError: the recording holds no mission, or it does not validate.
        """
        if self._config is None:
            from hil.replay.player import recorded_config

            try:
                self._config = recorded_config(self.recording)
            except Exception as exc:  # any reason fails the check, named
                raise SelectionError(f"the recorded mission config is needed: {exc}") from exc
        return self._config

    # -- time -------------------------------------------------------------------------------

    def resolve(self, ref: TimeRef, instants: dict[str, Instant]) -> int | None:
        """The mission time of ``ref`` (ns), or None when its instant never happened."""
        if ref.instant is None:
            base = 0
        elif ref.instant == "start":
            base = self.span[0]
        elif ref.instant == "end":
            base = self.span[1]
        else:
            found = self.instant(instants[ref.instant])
            if found is None:
                return None
            base = found
        return base + round(ref.offset_s * NS_PER_S)

    def instant(self, instant: Instant) -> int | None:
        """The first time ``instant`` happens, or None."""
        if instant.event is not None:
            return next((e.t_ns for e in self.events if e.kind == instant.event), None)
        assert instant.selector is not None
        for _, samples in self.series(instant.selector).items():
            for t_ns, value in samples:
                if instant.condition is None or not violation(value, instant.condition):
                    return t_ns
        return None

    # -- values -----------------------------------------------------------------------------

    def series(self, selector: Selector, lo_ns: int | None = None,
               hi_ns: int | None = None) -> dict[str, list[Sample]]:
        """Per value label (``v_mps[2]``, ``health.tasks.nav.overruns``), its samples in [lo, hi].

        Raises:
            SelectionError: an array missing from a message, or an index out of its shape.
        """
        out: dict[str, list[Sample]] = {}
        for message in self.messages(selector.topic, selector.direction):
            if (lo_ns is not None and message.t_ns < lo_ns) or (
                    hi_ns is not None and message.t_ns > hi_ns):
                continue
            for label, value in _values(message, selector):
                out.setdefault(label, []).append((message.t_ns, value))
        return out


def _values(message: Message, selector: Selector) -> Iterator[tuple[str, Any]]:
    if selector.field:
        yield from _walk(message.fields, selector.field, [])
        return
    arrays = dict(message.arrays)
    name = selector.array
    if name not in arrays:
        raise SelectionError(f"{fmt_t(message.t_ns)} {message.topic}: no array {name!r} "
                             f"(it has {sorted(arrays)})")
    array = arrays[name]
    yield _array_value(message, str(name), array, selector)


def _array_value(message: Message, name: str, array: np.ndarray[Any, Any],
                 selector: Selector) -> tuple[str, Any]:
    indices = selector.elements
    try:
        picked = (np.array([array[i] for i in indices], np.float64) if indices
                  else array.astype(np.float64).reshape(-1))
    except IndexError:
        raise SelectionError(f"{message.topic}: {name} has shape {list(array.shape)}; index "
                             f"{[list(i) for i in indices]} is outside it") from None
    what = (", ".join(f"{name}{list(i)}" for i in indices) if indices else name)
    reduce = selector.reduce
    if reduce is None:
        if picked.size != 1:
            raise SelectionError(f"{message.topic}: {what} has {picked.size} elements: give an "
                                 "element or a reduce")
        return what, float(picked[0])
    with np.errstate(invalid="ignore"):
        value = _REDUCERS[reduce](picked)
    return f"{reduce}({what})", value


_REDUCERS: dict[str, Callable[[np.ndarray[Any, Any]], float]] = {
    "norm": lambda v: float(np.sqrt(np.sum(v * v))), "max": lambda v: float(np.max(v)),
    "min": lambda v: float(np.min(v)), "max_abs": lambda v: float(np.max(np.abs(v))),
    "sum": lambda v: float(np.sum(v))}


def _walk(node: Any, path: tuple[str, ...], done: list[str]) -> Iterator[tuple[str, Any]]:
    """Each value at ``path`` under ``node`` (``*`` fans out over a map's keys)."""
    if not path:
        yield ".".join(done), _scalar(node)
        return
    if not isinstance(node, dict):
        return
    head, rest = path[0], path[1:]
    keys = sorted(node) if head == "*" else [head] if head in node else []
    for key in keys:
        yield from _walk(node[key], rest, [*done, str(key)])


def _scalar(value: Any) -> Any:
    if isinstance(value, (int, float)):  # bool included
        return float(value)
    return value if isinstance(value, str) else repr(value)


def violation(value: Any, condition: Condition) -> str | None:
    """Why ``value`` fails ``condition`` (None: it passes). NaN fails every numeric bound."""
    if condition.min is not None or condition.max is not None:
        if not isinstance(value, float):
            return f"{value!r} is not a number"
        if value != value:
            return "NaN"
        if condition.min is not None and value < condition.min:
            return f"{value:.6g} < min {condition.min:g}"
        if condition.max is not None and value > condition.max:
            return f"{value:.6g} > max {condition.max:g}"
    if condition.equals is not None and not _same(value, condition.equals):
        return f"{value!r} is not {condition.equals!r}"
    if condition.not_equals is not None and _same(value, condition.not_equals):
        return f"{value!r} is {condition.not_equals!r}"
    return None


def _same(value: Any, expected: float | str) -> bool:
    return bool(value == expected)
