"""Fast replay: a recording's sensor samples and ticks, fed to an in-process runtime.

The recorded mission (its text and overrides, from the ``flightai.config``
metadata) is rebuilt with its relative paths resolved from the original mission
folder, and its executive runs on the fast clock. Every ``to_runtime`` message
but the ticks is a sensor sample; the ticks only say which frame each sample
reached. As on the bus (``flightai.bus.inbound``), a sample sent before the tick
of instant ``t`` is available from frame ``t`` on and is taken at the first
frame at or after its measurement time, in (time, arrival) order. The live run
was stopped after its last tick's frame, so the replay runs exactly the recorded
frames. Real-time and lockstep players would feed the same :class:`RecordedInputs`
to another clock or to a runtime over the bus.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightai.bus.inbound import TICK_TOPIC
from flightai.bus.wire import WireError
from flightai.config.loader import load_mission, parse_mission
from flightai.config.overrides import apply_overrides
from flightai.config.schema import MissionConfig
from flightai.runtime import build_executive
from flightai.sched.clock import FastClock
from flightai.sched.io import DigestSink, MemorySink, Publication, Sample
from flightai.timebase import NS_PER_S
from hil.record.reader import Recording
from hil.record.recorder import META_CONFIG, TO_RUNTIME

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def recorded_config(recording: Recording, mission: Path | None = None,
                    overrides: Sequence[str] = ()) -> MissionConfig:
    """The mission a recording was made with.

    Args:
        recording: a recording holding ``flightai.config`` metadata.
        mission: use this mission file (and its folder) instead of the recorded
            text and its original folder; the recorded overrides still apply.
        overrides: further ``key.path=value`` overrides, applied last.

    Raises:
        ValueError: the recording holds no mission and none is given.
        ConfigError: the mission (with its overrides) does not validate.
    """
    meta = recording.metadata.get(META_CONFIG, {})
    recorded = [line for line in meta.get("overrides", "").splitlines() if line]
    if mission is not None:
        return load_mission(mission, [*recorded, *overrides])
    if "mission_toml" not in meta or "mission_path" not in meta:
        raise ValueError("the recording holds no mission config: give the mission file")
    data = apply_overrides(tomllib.loads(meta["mission_toml"]), [*recorded, *overrides])
    return parse_mission(data, Path(meta["mission_path"]).resolve().parent)


class RecordedInputs:
    """The recorded sensor samples, as an input source, up to the last recorded tick.

    Args:
        recording: the recording to take the ``to_runtime`` messages of.

    Attributes:
        ticks: the tick instants, in recorded order.
        samples: sensor samples recorded (before the last tick).
        unreadable: ``to_runtime`` messages the wire decoder refuses (the runtime
            refused them too, so they are not replayed).
    """

    def __init__(self, recording: Recording) -> None:
        self.ticks: list[int] = []
        self.samples = 0
        self.unreadable = 0
        #: per tick: the samples sent before it and after the previous tick
        self._batches: list[list[Sample]] = []
        batch: list[Sample] = []
        for recorded in recording.messages:
            if recorded.direction != TO_RUNTIME:
                continue
            try:
                message = recorded.decode()
            except WireError:
                self.unreadable += 1
                continue
            if message.topic == TICK_TOPIC:
                self.ticks.append(message.t_ns)
                self._batches.append(batch)
                batch = []
            else:
                batch.extend(Sample(message.topic, message.t_ns, value)
                             for _, value in message.arrays)
        self.samples = sum(len(b) for b in self._batches)
        self._next_tick = 0
        self._pending: list[Sample] = []

    def poll(self, t_ns: int) -> list[Sample]:
        """The samples sent by the tick of ``t_ns`` and measured at or before it."""
        arrived = False
        while self._next_tick < len(self.ticks) and self.ticks[self._next_tick] <= t_ns:
            self._pending.extend(self._batches[self._next_tick])
            self._next_tick += 1
            arrived = True
        if arrived:
            self._pending.sort(key=lambda s: s.t_ns)  # stable: arrival order within an instant
        cut = 0
        while cut < len(self._pending) and self._pending[cut].t_ns <= t_ns:
            cut += 1
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return ready


@dataclass(frozen=True)
class ReplayResult:
    """What a replay published.

    Attributes:
        publications: every publication, in order.
        digest: the output digest (:class:`~flightai.sched.io.DigestSink`), as the
            runtime logs it.
        frames: frames run.
        samples: sensor samples replayed.
        mission_ns: mission time covered (last tick instant plus one frame).
        wall_s: wall time of the run (tasks loaded and warmed up excluded).
    """

    publications: tuple[Publication, ...]
    digest: str
    frames: int
    samples: int
    mission_ns: int
    wall_s: float

    @property
    def speed(self) -> float:
        """Mission time replayed per wall second (a multiple of real time)."""
        return self.mission_ns / NS_PER_S / self.wall_s if self.wall_s > 0 else float("inf")


def replay(recording: Recording | str | Path, mission: Path | None = None,
           overrides: Iterable[str] = (), workers: int | None = None) -> ReplayResult:
    """Replay a recording as fast as the tasks run and collect what the runtime publishes.

    Args:
        recording: a recording (or its path) with the mission, samples and ticks.
        mission: replay with this mission file instead of the recorded one
            (:func:`recorded_config`).
        overrides: extra mission overrides.
        workers: worker threads (the outputs do not depend on it).

    Raises:
        ValueError: the recording has no ticks or no mission.
    """
    if not isinstance(recording, Recording):
        recording = Recording(recording)
    config = recorded_config(recording, mission, list(overrides))
    inputs = RecordedInputs(recording)
    if not inputs.ticks:
        raise ValueError("the recording holds no ticks: nothing to replay")
    memory, digest = MemorySink(), DigestSink()
    executive = build_executive(config, clock=FastClock(), source=inputs,
                                sinks=[memory, digest], workers=workers)
    end_ns = inputs.ticks[-1] + config.runtime.minor_frame_ns
    start = time.perf_counter()
    executive.run(end_ns)
    wall_s = time.perf_counter() - start
    return ReplayResult(tuple(memory.publications), digest.hexdigest(), executive.health.frames,
                        inputs.samples, end_ns, wall_s)
