"""Fast replay speed of the demo mission, and its overhead over the bare task compute.

The bench flies the nominal L2 demo once with ``flightai demo --record`` (the
demo's own code path: a runtime child process, the stub, the recorder), then,
on the same recording, interleaved ``--repeat`` times:

* ``replay``: :func:`hil.replay.replay` in fast mode, in-process (models loaded and
  warmed up beforehand, as the player does), timed from the first frame to
  the output digest of the last: speed = mission time / wall time, a multiple
  of real time;
* ``bare compute`` (the baseline): every job of the same replay, called
  directly, in the same order, on the inputs it was given in the replay
  (captured once beforehand): ``task.run(inputs)`` of fresh tasks, no
  executive, no input source, no sinks, no checks;
* ``BoundTask.execute`` (CPU only, to split the overhead): the same jobs through
  the executive's job wrapper (port mapping, output checks, read-only copies);
* the replay-only work (CPU): ``RecordedInputs.poll`` at every frame, and the
  memory and digest sinks on every publication;
* the frame loop alone: the same replay with every task replaced by one that
  returns, job after job, the outputs the real task computed (same digest): what
  the executive, the input source and the sinks cost with no compute at all.

Overhead = replay wall / bare compute wall - 1 (goal: under 25 %). The replay
runs its worker task (TRN) on a worker thread, as in flight, so on two idle
cores it can overlap with the frame thread; the bare compute is serial.

    python bench/replay_speed.py [--quick] [--repeat N] [--profile]
"""

from __future__ import annotations

import os

# One BLAS thread, as `flightai demo` gives its runtime (hil.demo.ONE_BLAS_THREAD): with
# numpy's default pool the navigation filter's small matrix products spin a second thread,
# which doubles the CPU time on two cores and makes the bare compute vary 5-fold.
os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"})

import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import numpy as np

from flightai.runtime import LoadedTasks, build_executive, load_tasks
from flightai.sched.bound import BoundTask
from flightai.sched.clock import FastClock
from flightai.sched.io import DigestSink, MemorySink, Publication
from flightai.sched.task import Arrays, Task
from flightai.timebase import NS_PER_S
from hil import demo
from hil.record.reader import Recording
from hil.replay.player import RecordedInputs, ReplayResult, recorded_config, replay

GOAL_OVERHEAD_PCT = 25.0

Job = tuple[Task, Arrays]


class _Capture:
    """A task that notes the inputs and (a copy of) the outputs of each job of the real one."""

    def __init__(self, task: Task, name: str, jobs: list[tuple[str, Arrays]],
                 outputs: dict[str, list[Arrays]]) -> None:
        self._task, self._name, self._jobs = task, name, jobs
        self._outputs = outputs.setdefault(name, [])

    def run(self, inputs: Arrays) -> Arrays:
        self._jobs.append((self._name, dict(inputs)))
        result = self._task.run(inputs)
        self._outputs.append({port: np.array(value) for port, value in result.items()})
        return result

    def warmup(self, inputs: Arrays) -> None:
        self._task.warmup(inputs)

    def describe(self) -> dict[str, str]:
        return self._task.describe()


class _Canned:
    """A task that returns, job after job, the outputs the real one computed: no compute."""

    def __init__(self, outputs: list[Arrays]) -> None:
        self._outputs = iter(outputs)

    def run(self, inputs: Arrays) -> Arrays:
        return next(self._outputs)

    def warmup(self, inputs: Arrays) -> None:
        """Nothing to warm up."""

    def describe(self) -> dict[str, str]:
        return {"kind": "canned"}


def _capture_jobs(recording: Recording) -> tuple[list[tuple[str, Arrays]], dict[str, list[Arrays]]]:
    """Every job of a fast replay, in call order (task name and inputs), and each task's outputs."""
    config = recorded_config(recording)
    loaded = load_tasks(config)
    jobs: list[tuple[str, Arrays]] = []
    outputs: dict[str, list[Arrays]] = {}
    wrapped: Mapping[str, Task] = {name: _Capture(task, name, jobs, outputs)
                                   for name, task in loaded.tasks.items()}
    inputs = RecordedInputs(recording, config)
    executive = build_executive(config, clock=FastClock(), source=inputs,
                                workers=1, loaded=LoadedTasks(dict(wrapped), loaded.reports))
    executive.run(inputs.ticks[-1] + config.runtime.minor_frame_ns)
    return jobs, outputs


def _frame_loop_s(recording: Recording, outputs: dict[str, list[Arrays]]) -> tuple[float, str]:
    """Wall time of the replay's frame loop alone (tasks return their recorded outputs), digest."""
    config = recorded_config(recording)
    canned: dict[str, Task] = {name: _Canned(jobs) for name, jobs in outputs.items()}
    inputs = RecordedInputs(recording, config)
    memory, digest = MemorySink(), DigestSink()
    executive = build_executive(config, clock=FastClock(), source=inputs, sinks=[memory],
                                workers=1, loaded=LoadedTasks(canned, {}))
    gc.collect()
    executive.run(inputs.ticks[-1] + config.runtime.minor_frame_ns)
    for publication in memory.publications:
        digest.publish(publication)
    return time.perf_counter() - executive.loop_started[0], digest.hexdigest()


def _bare_compute_s(recording: Recording, jobs: list[tuple[str, Arrays]]) -> tuple[float, float]:
    """Wall and CPU time of every captured job run directly on fresh, warmed-up tasks."""
    config = recorded_config(recording)
    tasks = load_tasks(config).tasks
    for name, inputs in dict(reversed(jobs)).items():  # each task's first job's inputs
        tasks[name].warmup(inputs)
    calls: list[Job] = [(tasks[name], inputs) for name, inputs in jobs]
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for task, inputs in calls:
        task.run(inputs)
    return time.perf_counter() - start, time.process_time() - cpu_start


def _bound_execute_cpu_s(recording: Recording, jobs: list[tuple[str, Arrays]]) -> float:
    """CPU time of the same jobs through ``BoundTask.execute`` (the executive's job wrapper)."""
    config = recorded_config(recording)
    tasks = load_tasks(config).tasks
    for name, inputs in dict(reversed(jobs)).items():
        tasks[name].warmup(inputs)
    bound = {t.name: BoundTask(t, tasks[t.name], config) for t in config.tasks}
    calls = [(bound[name], {sig: inputs[port] for port, sig in config.task(name).inputs})
             for name, inputs in jobs]
    gc.collect()
    start = time.process_time()
    for runner, snapshot in calls:
        runner.execute(snapshot)
    return time.process_time() - start


def _replay(recording: Recording) -> ReplayResult:
    """A fast replay, after a garbage collection."""
    gc.collect()
    return replay(recording, workers=1)


def _replay_only_cpu_s(recording: Recording, publications: Sequence[Publication],
                       frame_ns: int) -> dict[str, float]:
    """CPU time of what only a replay does per run: the input source and the two sinks."""
    inputs = RecordedInputs(recording, recorded_config(recording))
    end_ns = inputs.ticks[-1] + frame_ns
    gc.collect()
    start = time.process_time()
    for t_ns in range(0, end_ns, frame_ns):
        inputs.poll(t_ns)
    poll_s = time.process_time() - start
    memory, digest = MemorySink(), DigestSink()
    start = time.process_time()
    for publication in publications:
        memory.publish(publication)
        digest.publish(publication)
    return {"recorded_inputs_poll_s": round(poll_s, 4),
            "memory_and_digest_sinks_s": round(time.process_time() - start, 4)}


def _profile(recording: Recording) -> str:
    """The top functions of one fast replay by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    replay(recording, workers=1)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main() -> int:
    """Fly, record, then time replay and bare compute; print, write JSON."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one replay")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as folder:
        path = Path(folder) / "run.mcap"
        with open(Path(folder) / "demo.out", "w") as out:
            stdout, sys.stdout = sys.stdout, out
            try:
                status = demo.main(["--config", "l2", "--nominal", "--record", str(path),
                                    "--out", folder])
            finally:
                sys.stdout = stdout
        if status != 0:
            print("the demo flight failed", file=sys.stderr)
            return 1
        load_start = time.perf_counter()
        recording = Recording(path)
        read_s = time.perf_counter() - load_start
        jobs, outputs = _capture_jobs(recording)
        if args.profile:
            print(_profile(recording))
        replay_s: list[float] = []
        replay_cpu_s: list[float] = []
        bare_s: list[float] = []
        bare_cpu_s: list[float] = []
        bound_cpu_s: list[float] = []
        loop_s: list[float] = []
        for _ in range(repeat):
            wall, cpu = _bare_compute_s(recording, jobs)
            bare_s.append(wall)
            bare_cpu_s.append(cpu)
            bound_cpu_s.append(_bound_execute_cpu_s(recording, jobs))
            result = _replay(recording)
            replay_s.append(result.wall_s)
            replay_cpu_s.append(result.cpu_s)
            wall, loop_digest = _frame_loop_s(recording, outputs)
            loop_s.append(wall)
            if loop_digest != result.digest:
                print("the frame loop with canned outputs published other outputs",
                      file=sys.stderr)
                return 1
        replay_only = _replay_only_cpu_s(recording, result.publications,
                                         recorded_config(recording).runtime.minor_frame_ns)
    mission_ns, digest = result.mission_ns, result.digest
    med = statistics.median
    overhead_pct = 100.0 * (med(replay_s) / med(bare_s) - 1.0)
    overhead_cpu_pct = 100.0 * (med(replay_cpu_s) / med(bare_cpu_s) - 1.0)
    speed = mission_ns / NS_PER_S / med(replay_s)
    by_task: dict[str, int] = {}
    for name, _ in jobs:
        by_task[name] = by_task.get(name, 0) + 1
    ok = overhead_pct < GOAL_OVERHEAD_PCT
    common.print_table(["path", "wall s (median)", "min", "max", "CPU s (median)",
                        "x real time"], [
        ["bare compute (baseline)", med(bare_s), min(bare_s), max(bare_s), med(bare_cpu_s),
         mission_ns / NS_PER_S / med(bare_s)],
        ["same jobs via BoundTask.execute", "", "", "", med(bound_cpu_s), ""],
        ["fast replay", med(replay_s), min(replay_s), max(replay_s), med(replay_cpu_s),
         speed],
        ["frame loop alone (canned outputs)", med(loop_s), min(loop_s), max(loop_s), "", ""]])
    frames = mission_ns // recorded_config(recording).runtime.minor_frame_ns
    print(f"frame loop alone: {med(loop_s) / frames * 1e6:.1f} us per frame over {frames} frames")
    print(f"mission {mission_ns / NS_PER_S:.2f} s, {len(jobs)} jobs {by_task}; reading the "
          f"recording {read_s:.2f} s (not in the replay time); load average {common.loadavg()}")
    print(f"replay-only CPU per run: RecordedInputs.poll {replay_only['recorded_inputs_poll_s']} s,"
          f" memory and digest sinks {replay_only['memory_and_digest_sinks_s']} s")
    print(f"replay overhead: wall {overhead_pct:.1f} %, CPU {overhead_cpu_pct:.1f} % "
          f"(goal < {GOAL_OVERHEAD_PCT:.0f} %): {common.verdict(ok)}")
    payload: dict[str, Any] = {
        "mission": "models/ltd1/l2.toml, nominal (flightai demo --record)",
        "mission_s": mission_ns / NS_PER_S, "jobs": len(jobs), "jobs_by_task": by_task,
        "repeat": repeat, "read_recording_s": round(read_s, 3), "output_digest": digest,
        "replay_wall_s": [round(s, 4) for s in replay_s],
        "replay_cpu_s": [round(s, 4) for s in replay_cpu_s],
        "bare_compute_wall_s": [round(s, 4) for s in bare_s],
        "bare_compute_cpu_s": [round(s, 4) for s in bare_cpu_s],
        "bound_execute_cpu_s": [round(s, 4) for s in bound_cpu_s],
        "frame_loop_alone_wall_s": [round(s, 4) for s in loop_s],
        "speed_x_real_time": round(speed, 1), "overhead_pct": round(overhead_pct, 1),
        "overhead_cpu_pct": round(overhead_cpu_pct, 1), "replay_only_cpu_s": replay_only,
        "goal": {"metric": "overhead_pct", "limit": GOAL_OVERHEAD_PCT,
                 "text": "fast replay wall / bare task compute wall - 1 < 25 %"},
        "pass": ok, "loadavg": common.loadavg(), "platform": common.platform_block()}
    print(f"wrote {common.write_json('replay_speed', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
