"""Replay over the bus: the recorded wire messages sent to a runtime on the external clock.

For each recorded tick, the player sends the messages recorded before it (the
exact wire frames, malformed ones included: the runtime refuses them as it did
live), then the tick, and waits for the runtime's frame mark, collecting the
``out.*`` publications on the way: the lockstep protocol of the flight-software
stub (``hil.ltd1.stub``). The runtime is either a child process started here
(``flightai run MISSION --clock external`` on free loopback ports, the
recorded overrides, then the player's) or one already running, fresh, at the
given endpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from flightai.bus.outbound import FRAME_TOPIC, OUTPUT_PREFIX
from flightai.bus.wire import Message
from flightai.client import Client
from flightai.config.schema import MissionConfig
from flightai.inject import ENV_GATE
from flightai.sched.io import DigestSink, Publication
from hil.demo import ONE_BLAS_THREAD
from hil.faults.record import recorded_injections
from hil.ltd1.stub import StubError, wait_ready
from hil.ports import free_ports
from hil.record.reader import Recording
from hil.record.recorder import META_CONFIG
from hil.replay.control import FrameControl
from hil.replay.player import BusTarget, Mode, RecordedInputs, ReplayResult, recorded_overrides

SUBSCRIBE_SETTLE_S = 0.3
"""Time for a new subscription to reach the runtime's publisher before the first frame."""
FAST_FRAMES_AHEAD = 8
"""Fast mode: ticks sent before the oldest one's frame mark has come back."""


class ChildRuntime:
    """``flightai run MISSION --clock external`` in a child process, on free loopback ports.

    Args:
        mission: the mission file.
        overrides: ``--set`` overrides (the endpoints and clock are added last).
        workers: ``--workers``, or None.
        log: the file its output goes to.
        inject: a model-fault injection file (``flightai run --inject-faults``, armed by
            ``FLIGHTAI_FAULT_INJECTION=1`` in its environment), to replay a faulted run.
    """

    def __init__(self, mission: Path, overrides: list[str], workers: int | None,
                 log: Path, inject: Path | None = None) -> None:
        sensors, outputs, commands = (f"tcp://127.0.0.1:{p}" for p in free_ports(3))
        self.endpoints = (sensors, outputs, commands)
        sets = [*overrides, f"bus.sensors={sensors}", f"bus.outputs={outputs}",
                f"bus.commands={commands}", "runtime.clock=external"]
        self.command = [sys.executable, "-m", "flightai", "run", str(mission), "--quiet",
                        *(f"--set={s}" for s in sets)]
        if workers:
            self.command += ["--workers", str(workers)]
        self._env = {**os.environ, **ONE_BLAS_THREAD}
        if inject is not None:
            self.command += ["--inject-faults", str(inject)]
            self._env[ENV_GATE] = "1"
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChildRuntime:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                             env=self._env)
        return self

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """Wait for it to exit; its status, or None if it is still running."""
        assert self._process is not None
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def last_words(self) -> str:
        """The last line of its output."""
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            if self.wait(10) is None:
                self._process.kill()
                self._process.wait()


def child_mission(recording: Recording, mission: Path | None) -> Path:
    """The mission file a child runtime runs: ``mission``, or the recorded one if unchanged.

    Raises:
        ValueError: no mission given and the recorded file is gone or has changed
            since the recording (its text differs from the recorded text).
    """
    if mission is not None:
        return mission
    meta = recording.metadata.get(META_CONFIG, {})
    if "mission_path" not in meta:
        raise ValueError("the recording holds no mission config: give the mission file")
    path = Path(meta["mission_path"])
    if not path.is_file():
        raise ValueError(f"{path}: the recorded mission file is gone: give the mission file")
    if path.read_text() != meta.get("mission_toml"):
        raise ValueError(f"{path}: the mission file changed since the recording: "
                         "give the mission file to replay with")
    return path


def replay_over_bus(recording: Recording, inputs: RecordedInputs, config: MissionConfig,
                    target: BusTarget, control: FrameControl, *, mode: Mode,
                    mission: Path | None, overrides: list[str],
                    workers: int | None) -> ReplayResult:
    """Replay the recorded messages into a runtime over the bus (see the module description).

    Raises:
        StubError: the runtime exited, or did not answer READY or a frame mark in time.
    """
    if target.endpoints is not None:
        with Client(*target.endpoints, name="flightai-player") as client:
            return _drive(client, inputs, control, target, mode, lambda: True)
    with tempfile.TemporaryDirectory(prefix="flightai-replay-") as folder:
        log = target.log or Path(folder) / "runtime.log"
        path = child_mission(recording, mission)
        injections = recorded_injections(recording, config)  # a faulted run's model faults
        inject = None
        if injections.overruns or injections.nan_outputs:
            inject = Path(folder) / "injections.json"
            inject.write_text(json.dumps(injections.to_json()))
        with ChildRuntime(path, [*recorded_overrides(recording), *overrides], workers,
                          log, inject) as child:
            try:
                with Client(*child.endpoints, name="flightai-player") as client:
                    result = _drive(client, inputs, control, target, mode, child.alive)
                    ack = client.command("stop")
                    if not ack.accepted:
                        raise StubError(f"stop refused: {ack.reason}: {ack.detail}")
                child.wait(30)
            except StubError as exc:
                raise StubError(f"{exc}; the runtime's last words ({log}): "
                                f"{child.last_words()}") from exc
    return result


def _drive(client: Client, inputs: RecordedInputs, control: FrameControl, target: BusTarget,
           mode: Mode, alive: Callable[[], bool]) -> ReplayResult:
    """Send each frame's messages and tick, await its frame mark; collect the publications."""
    client.subscribe([OUTPUT_PREFIX, FRAME_TOPIC])
    wait_ready(client, alive=alive)
    time.sleep(SUBSCRIBE_SETTLE_S)
    publications: list[Publication] = []
    digest = DigestSink()
    send = client.send_raw
    frames = ticks = 0
    end_ns = control.end_ns
    ahead = FAST_FRAMES_AHEAD if mode is Mode.FAST and control.unpaced else 1
    in_flight: deque[int] = deque()  # ticks sent whose frame mark has not come yet
    start, cpu_start = time.perf_counter(), time.process_time()
    for t_ns, sent, tick, early_ok in zip(inputs.ticks, inputs.sent, inputs.tick_frames,
                                          inputs.early_ok, strict=True):
        if t_ns >= end_ns or not control.before_frame(t_ns):
            break
        while in_flight and (len(in_flight) >= ahead or not early_ok):
            frames += _await_frame(client, in_flight.popleft(), publications, digest,
                                   target.frame_timeout_s, alive)
        for message in sent:
            send(message)
        send(tick)
        ticks += 1
        in_flight.append(t_ns)
    while in_flight:
        frames += _await_frame(client, in_flight.popleft(), publications, digest,
                               target.frame_timeout_s, alive)
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    if control.quit:
        end_ns = inputs.ticks[ticks]
    sensors = target.endpoints[0] if target.endpoints else "a child runtime"
    return ReplayResult(tuple(publications), digest.hexdigest(), frames,
                        inputs.samples_before(end_ns), end_ns,
                        wall_s, mode, f"bus ({sensors})", control.start_ns, control.quit,
                        control.max_lag_ns / 1e6, cpu_s)


def _await_frame(client: Client, t_ns: int, publications: list[Publication],
                 digest: DigestSink, timeout_s: float, alive: Callable[[], bool]) -> int:
    """Collect publications until the frame mark of ``t_ns``; the frames marked."""
    deadline = time.monotonic() + timeout_s
    marks = 0
    while time.monotonic() < deadline:
        message = client.receive(timeout_ms=100)
        if message is None:
            if not alive():
                raise StubError(f"the runtime exited before the frame at t = {t_ns} ns")
            continue
        if message.topic == FRAME_TOPIC:
            marks += 1
            if message.t_ns >= t_ns:
                return marks
        elif message.topic.startswith(OUTPUT_PREFIX):
            publication = _publication(message)
            publications.append(publication)
            digest.publish(publication)
    raise StubError(f"no frame mark for t = {t_ns} ns within {timeout_s:.0f} s: "
                    "is the runtime on the external clock, and fresh?")


def _publication(message: Message) -> Publication:
    fields = message.fields
    return Publication(message.t_ns, str(fields["task"]), int(fields["t_release_ns"]),
                       tuple(message.arrays), str(fields["status"]))
