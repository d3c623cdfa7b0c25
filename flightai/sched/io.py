"""What crosses the executive's edges: input samples in, publications and events out.

An :class:`InputSource` is polled once per frame; an :class:`OutputSink`
receives every publication in the fixed config order. The bus plugs in here
without the executive changing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from flightai.sched.health import Event, Health


@dataclass(frozen=True)
class Sample:
    """One input value for a signal, time-tagged with when it was measured (ns).

    ``immutable`` promises that ``value`` is read-only, C-ordered and over
    memory nobody will ever write (a received frame's bytes): the executive
    then keeps it as is instead of copying it.
    """

    signal: str
    t_ns: int
    value: npt.NDArray[np.generic]
    immutable: bool = False


class Publication(NamedTuple):
    """A task's outputs made visible at a deadline.

    Attributes:
        t_ns: the logical instant (the job's deadline).
        task: the task whose outputs these are (the primary's name, also when
            its fallback produced them).
        t_release_ns: the release the inputs were snapshotted at.
        outputs: (signal, value) in the config's output order.
        status: ``ok``, ``held`` (last outputs repeated) or ``fallback``.

    A named tuple rather than a frozen dataclass: one is made per task per
    deadline, and a tuple is built at a fifth of the cost.
    """

    t_ns: int
    task: str
    t_release_ns: int
    outputs: tuple[tuple[str, npt.NDArray[np.generic]], ...]
    status: str


class InputSource(Protocol):
    """Gives the samples that become visible at a logical instant."""

    def poll(self, t_ns: int) -> Iterable[Sample]:
        """Return the samples to make visible at ``t_ns`` (may be empty)."""
        ...


class OutputSink(Protocol):
    """Receives publications and events, on the executive's thread; must not block."""

    def publish(self, publication: Publication) -> None:
        """Take one publication."""
        ...

    def event(self, event: Event) -> None:
        """Take one event."""
        ...

    def frame_done(self, t_ns: int, health: Health) -> None:
        """The frame at ``t_ns`` is complete (for fixed-rate telemetry and lockstep)."""
        ...


class DigestSink:
    """Hashes every publication (time, task, status, signal, dtype, shape, bytes).

    Two runs are bit-identical, logical timestamps included, exactly when
    their digests match.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0
        self._labels: dict[tuple[str, str, tuple[int, ...]], bytes] = {}

    def publish(self, publication: Publication) -> None:
        """Fold one publication into the digest (one update of the joined parts)."""
        parts: list[Any] = [  # bytes and C-contiguous arrays: buffers to join
            struct.pack("<qq", publication.t_ns, publication.t_release_ns),
            f"{publication.task}|{publication.status}".encode()]
        labels = self._labels
        for signal, value in publication.outputs:
            key = (signal, value.dtype.str, value.shape)
            label = labels.get(key)
            if label is None:
                label = labels[key] = f"|{signal}|{key[1]}|{value.shape}".encode()
            parts.append(label)
            parts.append(value if value.flags.c_contiguous else np.ascontiguousarray(value))
        self._hash.update(b"".join(parts))
        self.count += 1

    def event(self, event: Event) -> None:
        """Events are telemetry: not part of the output digest."""

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Nothing to do per frame."""

    def hexdigest(self) -> str:
        """The SHA-256 of everything published so far."""
        return self._hash.hexdigest()


class MemorySink:
    """Keeps every publication and event in lists (tests, small runs)."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.events: list[Event] = []

    def publish(self, publication: Publication) -> None:
        """Keep it."""
        self.publications.append(publication)

    def event(self, event: Event) -> None:
        """Keep it."""
        self.events.append(event)

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Nothing to do per frame."""


class ChainSource:
    """Polls several sources in order each frame (e.g. the bus, then an in-process one)."""

    def __init__(self, sources: Iterable[InputSource]) -> None:
        self._sources = tuple(sources)

    def poll(self, t_ns: int) -> list[Sample]:
        """Every source's samples for ``t_ns``, source by source."""
        return [s for source in self._sources for s in source.poll(t_ns)]


class ListSource:
    """Replays a list of samples: each becomes visible at the first instant >= its time."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self._samples = sorted(samples, key=lambda s: s.t_ns)
        self._next = 0

    def poll(self, t_ns: int) -> list[Sample]:
        """The samples measured at or before ``t_ns`` not yet given."""
        start = self._next
        while self._next < len(self._samples) and self._samples[self._next].t_ns <= t_ns:
            self._next += 1
        return self._samples[start:self._next]
