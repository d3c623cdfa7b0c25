"""Replay a recording's sensor samples and ticks into a runtime, in-process or over the bus.

The recorded mission (its text and overrides, from the ``flightai.config``
metadata) is rebuilt with its relative paths resolved from the original mission
folder. Every ``to_runtime`` message but the ticks is a sensor sample; the
ticks say which frame each sample reached. As on the bus
(``flightai.bus.inbound``), a sample sent before the tick of instant ``t`` is
available from frame ``t`` on and is taken at the first frame at or after its
measurement time, in (time, arrival) order. The live run was stopped after its
last tick's frame, so the replay runs exactly the recorded frames.

Three modes (:class:`Mode`):

* ``fast``: in-process on the fast clock, as fast as the tasks compute.
* ``lockstep``: in-process on the external clock, the player feeding it the
  recorded ticks one by one; over the bus, the recorded samples and tick of
  each frame are sent, then the player waits for the frame mark (as the
  flight-software stub does). Over the bus, ``fast`` is this same protocol:
  the inputs of frame ``t + 1`` must not reach the runtime before frame ``t``
  ran, or it would see them a frame early.
* ``realtime``: as ``lockstep`` (bus) or ``fast`` (in-process), each frame
  released at its mission time on the wall clock, times ``rate``.

Every mode runs the mission from time 0: frames before the window's
``start_ns`` are a seek (never paced or stepped), and the replay ends at
``stop_ns``. :func:`compare_replay` compares the window's publications with the
recorded ones.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import operator
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightai.bus.inbound import TICK_TOPIC, InboundChecks
from flightai.config.loader import load_mission, parse_mission
from flightai.config.overrides import apply_overrides
from flightai.config.schema import BusConfig, MissionConfig
from flightai.inject import Injections
from flightai.runtime import build_executive
from flightai.sched.clock import Clock, ExternalClock, FastClock
from flightai.sched.io import DigestSink, MemorySink, Publication, Sample
from flightai.timebase import NS_PER_S
from hil.faults.record import recorded_injections
from hil.record.fingerprint import bit_exact, fingerprint
from hil.record.reader import Recording
from hil.record.recorder import META_CONFIG, META_PLATFORM, TO_RUNTIME
from hil.replay.compare import Comparison, Tolerance, compare, recorded_publications
from hil.replay.control import FrameControl, RichProgress, Stepper

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

Frames = tuple[bytes, ...]
_T_NS = operator.attrgetter("t_ns")


class Mode(enum.Enum):
    """How frames are paced."""

    FAST = "fast"
    LOCKSTEP = "lockstep"
    REAL_TIME = "realtime"


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
    recorded = recorded_overrides(recording)
    if mission is not None:
        return load_mission(mission, [*recorded, *overrides])
    if "mission_toml" not in meta or "mission_path" not in meta:
        raise ValueError("the recording holds no mission config: give the mission file")
    data = apply_overrides(tomllib.loads(meta["mission_toml"]), [*recorded, *overrides])
    return parse_mission(data, Path(meta["mission_path"]).resolve().parent)


def recorded_overrides(recording: Recording) -> list[str]:
    """The ``--set`` overrides the recorded runtime ran with."""
    meta = recording.metadata.get(META_CONFIG, {})
    return [line for line in meta.get("overrides", "").splitlines() if line]


class RecordedInputs:
    """The recorded sensor samples, as an input source, up to the last recorded tick.

    Every recorded ``to_runtime`` message goes through the bus's own checks
    (:class:`~flightai.bus.inbound.InboundChecks`, built from the mission as the
    runtime's bus builds them: wire format, sizes, topics, dtypes and shapes, and the
    per-topic sequence numbers), so a message the runtime's bus refused (corrupt,
    duplicated or reordered on the wire) is refused here too, for the same reason,
    and never reaches the executive.

    Args:
        recording: the recording to take the ``to_runtime`` messages of.
        config: the mission replayed (its input signals and ``bus.max_message_bytes``).

    Attributes:
        ticks: the tick instants, in recorded order.
        samples: sensor samples recorded (before the last tick) that pass the bus checks.
        refused: the bus checks' refusals, by reason (what the runtime's bus counted).
        sent: per tick, the wire frames of every message sent before it and after
            the previous tick (refused ones included), as recorded.
        tick_frames: per tick, the tick's own wire frames.
    """

    def __init__(self, recording: Recording, config: MissionConfig) -> None:
        checks = InboundChecks({s.name: s for s in config.signals if s.input},
                               (config.bus or BusConfig()).max_message_bytes)
        self.ticks: list[int] = []
        self.sent: list[list[Frames]] = []
        self.tick_frames: list[Frames] = []
        #: per tick: the samples sent before it and after the previous tick
        self._batches: list[list[Sample]] = []
        batch: list[Sample] = []
        raw: list[Frames] = []
        #: per tick: whether its messages may reach the runtime while the frame of the
        #: tick before runs (all readable, one array each, measured after that tick)
        self.early_ok: list[bool] = []
        clean = True
        for recorded in recording.messages:
            if recorded.direction != TO_RUNTIME:
                continue
            message = checks.check(recorded.frames)
            if message is None:
                raw.append(recorded.frames)
                clean = False
                continue
            if message.topic == TICK_TOPIC:
                previous = self.ticks[-1] if self.ticks else None
                self.early_ok.append(clean and (previous is None or all(
                    s.t_ns > previous for s in batch)))
                self.ticks.append(message.t_ns)
                self.tick_frames.append(recorded.frames)
                self._batches.append(batch)
                self.sent.append(raw)
                batch, raw, clean = [], [], True
            else:
                raw.append(recorded.frames)
                clean = clean and len(message.arrays) == 1
                # decoded over the recording's bytes: nobody writes them
                batch.extend(Sample(message.topic, message.t_ns, value, immutable=True)
                             for _, value in message.arrays)
        self.samples = sum(len(b) for b in self._batches)
        self.refused = {reason: n for reason, n in checks.rejects.items() if n}
        #: per tick: whether its batch is in time order
        self._sorted = [all(a.t_ns <= b.t_ns for a, b in itertools.pairwise(batch))
                        for batch in self._batches]
        self.rewind()

    def samples_before(self, end_ns: int) -> int:
        """Sensor samples sent before the ticks of instants up to ``end_ns`` (excluded)."""
        return sum(len(b) for t, b in zip(self.ticks, self._batches, strict=True) if t < end_ns)

    def rewind(self) -> None:
        """Start over from the first tick (for another pass)."""
        self._next_tick = 0
        self._pending: list[Sample] = []

    def poll(self, t_ns: int) -> list[Sample]:
        """The samples sent by the tick of ``t_ns`` and measured at or before it.

        In (time, arrival) order; a stable sort runs only when a batch arrives out of
        time order, and the ready samples are cut with a bisection.
        """
        pending = self._pending
        unsorted = False
        while self._next_tick < len(self.ticks) and self.ticks[self._next_tick] <= t_ns:
            batch = self._batches[self._next_tick]
            if batch:
                unsorted = unsorted or not self._sorted[self._next_tick] or bool(
                    pending and pending[-1].t_ns > batch[0].t_ns)
                pending.extend(batch)
            self._next_tick += 1
        if unsorted:
            pending.sort(key=_T_NS)  # stable: arrival order within an instant
        if not pending or pending[0].t_ns > t_ns:
            return []
        if pending[-1].t_ns <= t_ns:
            self._pending = []
            return pending
        cut = bisect.bisect_right(pending, t_ns, key=_T_NS)
        ready = pending[:cut]
        del pending[:cut]
        return ready


@dataclass(frozen=True)
class ReplayResult:
    """What a replay published.

    Attributes:
        publications: every publication, in order (the seek before ``start_ns``
            included).
        digest: the output digest (:class:`~flightai.sched.io.DigestSink`) of
            ``publications``, as the runtime logs it.
        frames: frames run.
        samples: sensor samples replayed.
        mission_ns: the mission time the replay ended at (excluded): the last
            tick instant plus one frame, or ``stop_ns``, or where it was quit.
        wall_s: wall time of the run: in-process, from the first frame (tasks loaded
            and warmed up, garbage collector frozen, before it) to the output digest.
        mode: the mode it ran in.
        target: ``in-process`` or the runtime's sensors endpoint.
        start_ns: the window's start (frames before it were a seek).
        quit: the user quit (step mode) before the end.
        max_lag_ms: real time only: how late the latest frame was released.
        cpu_s: CPU time of this process over ``wall_s`` (every thread; over the
            bus, the player's alone).
        rejects: in-process, the inputs refused, by reason: the bus checks' and the
            executive's together, as the runtime's health reports them (over the
            bus: None, the runtime counts them).
    """

    publications: tuple[Publication, ...]
    digest: str
    frames: int
    samples: int
    mission_ns: int
    wall_s: float
    mode: Mode = Mode.FAST
    target: str = "in-process"
    start_ns: int = 0
    quit: bool = False
    max_lag_ms: float = 0.0
    cpu_s: float = 0.0
    rejects: dict[str, int] | None = None

    @property
    def speed(self) -> float:
        """Mission time replayed per wall second (a multiple of real time)."""
        return self.mission_ns / NS_PER_S / self.wall_s if self.wall_s > 0 else float("inf")

    def window(self) -> list[Publication]:
        """The publications of the window, ``start_ns`` to ``mission_ns``."""
        return in_window(self.publications, self.start_ns, self.mission_ns)


def in_window(publications: Iterable[Publication], start_ns: int,
              end_ns: int) -> list[Publication]:
    """The publications made at ``start_ns <= t_ns < end_ns``."""
    return [p for p in publications if start_ns <= p.t_ns < end_ns]


def replay(recording: Recording | str | Path, mission: Path | None = None,
           overrides: Iterable[str] = (), workers: int | None = None, *,
           mode: Mode = Mode.FAST, rate: float = 1.0, start_ns: int = 0,
           stop_ns: int | None = None, bus: BusTarget | None = None,
           control: ControlFactory | None = None) -> ReplayResult:
    """Replay a recording and collect what the runtime publishes.

    Args:
        recording: a recording (or its path) with the mission, samples and ticks.
        mission: replay with this mission file instead of the recorded one
            (:func:`recorded_config`).
        overrides: extra mission overrides.
        workers: worker threads (the outputs do not depend on it).
        mode: fast, lockstep or real time (see the module's description).
        rate: real time multiplied by this (``realtime`` only).
        start_ns: mission time the window starts at: earlier frames are a seek.
        stop_ns: mission time to stop at (default: after the last recorded tick).
        bus: replay into a runtime over the bus (a child process or a running
            one) instead of in-process.
        control: builds the progress display and stepper from the frame and the
            window (default: none, as fast as the mode allows).

    Raises:
        ValueError: the recording has no ticks or no mission, or a bad window.
    """
    if not isinstance(recording, Recording):
        recording = Recording(recording)
    config = recorded_config(recording, mission, list(overrides))
    inputs = RecordedInputs(recording, config)
    if not inputs.ticks:
        raise ValueError("the recording holds no ticks: nothing to replay")
    injections = recorded_injections(recording, config)  # a faulted run's model faults
    frame_ns = config.runtime.minor_frame_ns
    end_ns = inputs.ticks[-1] + frame_ns
    if stop_ns is not None:
        end_ns = min(end_ns, stop_ns)
    if not 0 <= start_ns < end_ns:
        raise ValueError(f"window: expected 0 <= start < stop <= {end_ns} ns, "
                         f"got start {start_ns}, stop {end_ns}")
    paced = rate if mode is Mode.REAL_TIME else None
    frame_control = (control or ControlFactory())(frame_ns, start_ns, end_ns, paced)
    try:
        if bus is not None:
            from hil.replay.bus import replay_over_bus

            return replay_over_bus(recording, inputs, config, bus, frame_control, mode=mode,
                                   mission=mission, overrides=list(overrides), workers=workers)
        return _in_process(config, inputs, frame_control, mode=mode, workers=workers,
                           injections=injections)
    finally:
        frame_control.close()


class ControlFactory:
    """Builds a :class:`FrameControl` for one replay (progress bar, stepper).

    Args:
        progress: show a rich progress bar.
        stepper: step frame by frame with this (see :class:`~hil.replay.control.Stepper`).
    """

    def __init__(self, progress: bool = False, stepper: Stepper | None = None) -> None:
        self.progress = progress
        self.stepper = stepper

    def __call__(self, frame_ns: int, start_ns: int, end_ns: int,
                 rate: float | None) -> FrameControl:
        """The control of a replay of ``start_ns`` to ``end_ns`` paced at ``rate``."""
        progress = RichProgress(end_ns) if self.progress else None
        return FrameControl(frame_ns, start_ns, end_ns, rate=rate, stepper=self.stepper,
                            progress=progress)


class _ControlledClock:
    """A virtual clock (jobs awaited at their deadlines) that consults the control per frame."""

    real_time = False

    def __init__(self, control: FrameControl) -> None:
        self._control = control
        self._stopped = False

    def start(self, t0_ns: int) -> None:
        """Nothing to anchor: the control paces."""

    def wait_until(self, t_ns: int) -> bool:
        """Ask the control (pace, step, progress); False once quit or stopped."""
        if self._stopped:
            return False
        return self._control.before_frame(t_ns)

    def lateness_ns(self, t_ns: int) -> int:
        """Always on time (logical)."""
        return 0

    def stop(self) -> None:
        """Make later waits return False."""
        self._stopped = True


def _lockstep_clock(inputs: RecordedInputs, control: FrameControl) -> ExternalClock:
    """An external clock fed the recorded ticks one by one, as a lockstep peer would."""
    clock = ExternalClock(NS_PER_S)
    ticks = iter(inputs.ticks)

    def pump(max_wait_ns: int) -> None:
        t_ns = next(ticks, None)
        if t_ns is None or not control.before_frame(t_ns):
            clock.stop()
            return
        clock.tick(t_ns)

    clock.set_pump(pump)
    return clock


def _in_process(config: MissionConfig, inputs: RecordedInputs, control: FrameControl, *,
                mode: Mode, workers: int | None, injections: Injections) -> ReplayResult:
    clock: Clock
    if mode is Mode.LOCKSTEP:
        clock = _lockstep_clock(inputs, control)
    elif control.passive:
        clock = FastClock()
    else:
        clock = _ControlledClock(control)
    memory = MemorySink()
    inputs.rewind()
    executive = build_executive(config, clock=clock, source=inputs, sinks=[memory],
                                workers=workers, injected_overruns=injections.overruns,
                                injected_nan=injections.nan_outputs)
    executive.run(control.end_ns)
    # The digest of the kept publications, after the loop: the same bytes hashed in one
    # pass instead of a little at every deadline (a third of the cost), and timed with it.
    digest = DigestSink()
    for publication in memory.publications:
        digest.publish(publication)
    wall_s, cpu_s = (time.perf_counter() - executive.loop_started[0],
                     time.process_time() - executive.loop_started[1])
    frames = executive.health.frames
    end_ns = control.end_ns if not control.quit else frames * config.runtime.minor_frame_ns
    rejects = dict(inputs.refused)
    for reason, count in executive.health.rejects.items():
        rejects[reason] = rejects.get(reason, 0) + count
    return ReplayResult(tuple(memory.publications), digest.hexdigest(), frames,
                        inputs.samples_before(end_ns), end_ns, wall_s, mode, "in-process",
                        control.start_ns, control.quit, control.max_lag_ns / 1e6, cpu_s,
                        rejects)


@dataclass(frozen=True)
class BusTarget:
    """A runtime to replay into over the bus.

    Attributes:
        endpoints: (sensors, outputs, commands) of a runtime already running on
            the external clock, fresh (at mission time 0); None starts a child
            process ``flightai run MISSION --clock external`` on free loopback ports.
        frame_timeout_s: how long to wait for a frame mark before giving up.
        log: where the child runtime's output goes (default: a temporary file).
    """

    endpoints: tuple[str, str, str] | None = None
    frame_timeout_s: float = 10.0
    log: Path | None = None


def compare_replay(recording: Recording, result: ReplayResult,
                   tolerances: dict[str, Tolerance] | None = None) -> Comparison:
    """Compare a replay's window with the recorded publications of the same window.

    Bit for bit when the recording's platform fingerprint matches this machine's,
    else within ``tolerances``.
    """
    same = bit_exact(recording.metadata.get(META_PLATFORM, {}), fingerprint())
    recorded = in_window(recorded_publications(recording), result.start_ns, result.mission_ns)
    return compare(recorded, result.window(), bit_exact=same, tolerances=tolerances)
