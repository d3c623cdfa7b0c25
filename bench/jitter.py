"""Release jitter of the ``wall`` clock: flightai's executive against a ``time.sleep`` loop.

At 50 Hz and 500 Hz this measures how late each frame starts compared with
its ideal instant (lateness), for

* flightai: an :class:`~flightai.sched.executive.Executive` on a
  :class:`~flightai.sched.clock.WallClock` (sleep, then spin the last
  ``spin_us``), running one Python function task per frame that does trivial
  numpy work; lateness is recorded right after each ``wait_until`` by a thin
  ``WallClock`` subclass into a preallocated array;
* the baseline: a plain loop that sleeps (``time.sleep``) until the next
  deadline computed from ``time.monotonic_ns`` and does the same work;
* a reference (not a goal): WallClock's sleep-then-spin written inline with no
  executive, to tell what the VM does to any spinning loop from flightai's code.

Both run with a busy process (a tight Python loop) on the other core, and the
bench process on its own core. The loops alternate in segments (three
each per rate, order rotated) so that VM noise hits both alike. CPU time is reported as
``time.process_time`` delta over wall time, since spinning costs CPU.

    python bench/jitter.py [--quick]      # 30 s per loop and rate; --quick: 5 s
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from flightai.config.loader import parse_mission
from flightai.pytask import FunctionTask
from flightai.runtime import LoadedTasks, build_executive
from flightai.sched.clock import WallClock
from flightai.timebase import NS_PER_MS, NS_PER_S, NS_PER_US

RATES_HZ = (50, 500)
SEGMENTS = 3                 # segments per loop and rate, alternated
SPIN_US = 1000               # flightai's default runtime.spin_us
GOAL_P99_US = 200.0
GOAL_RATIO = 5.0


def trivial_work(inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[Any]]:
    """The per-frame job: a few numpy operations on an 8-vector."""
    x = inputs["x"]
    return {"y": np.tanh(x * np.float32(0.5) + np.float32(1.0))}


class RecordingClock(WallClock):
    """A WallClock that records its lateness right after each wait, into a numpy array."""

    def __init__(self, spin_ns: int, capacity: int) -> None:
        super().__init__(spin_ns=spin_ns)
        self.lateness = np.zeros(capacity, np.int64)
        self.count = 0

    def wait_until(self, t_ns: int) -> bool:
        """Wait as WallClock does, then note how late the instant was reached."""
        ok = super().wait_until(t_ns)
        late = self.lateness_ns(t_ns)
        if ok and self.count < self.lateness.size:
            self.lateness[self.count] = late
            self.count += 1
        return ok


def _mission(frame_ms: int) -> dict[str, Any]:
    return {
        "mission": {"name": "jitter"},
        "runtime": {"minor_frame_ms": frame_ms, "clock": "wall", "workers": 1,
                    "spin_us": SPIN_US, "freeze_gc": True},
        "signals": [{"name": "in", "dtype": "float32", "shape": [8], "input": True},
                    {"name": "out", "dtype": "float32", "shape": [8]}],
        "tasks": [{"name": "work", "function": "jitter.py:trivial_work", "period_ms": frame_ms,
                   "inputs": {"x": "in"}, "outputs": {"y": "out"}}],
    }


def run_flightai(frame_ms: int, n_frames: int) -> dict[str, Any]:
    """One segment of the executive on the recording wall clock."""
    config = parse_mission(_mission(frame_ms), common.BENCH_DIR)
    clock = RecordingClock(SPIN_US * NS_PER_US, n_frames)
    loaded = LoadedTasks({"work": FunctionTask("jitter.py:trivial_work", trivial_work)}, {})
    executive = build_executive(config, clock=clock, loaded=loaded)
    csw0 = _involuntary_switches()
    cpu0, wall0 = time.process_time(), time.monotonic()
    executive.run(n_frames * frame_ms * NS_PER_MS)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    health = executive.health.snapshot()
    return {"lateness_ns": clock.lateness[:clock.count], "cpu_s": cpu, "wall_s": wall,
            "preemptions": _involuntary_switches() - csw0,
            "frames": health["frames"], "frame_slips": health["frame_slips"],
            "published": health["tasks"]["work"]["published"],
            "health_p99_ns": health["wall_lateness_p99_ns"]}


def run_sleep(frame_ms: int, n_frames: int) -> dict[str, Any]:
    """One segment of the baseline: sleep until each deadline, then the same work."""
    lateness = np.zeros(n_frames, np.int64)
    frame_ns = frame_ms * NS_PER_MS
    inputs = {"x": np.zeros(8, np.float32)}
    clock = time.monotonic_ns
    sleep = time.sleep
    gc.collect()
    gc.freeze()
    gc.disable()                       # as the executive does (freeze_gc = true)
    csw0 = _involuntary_switches()
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        base = clock()
        for k in range(n_frames):
            target = base + k * frame_ns
            remaining = target - clock()
            if remaining > 0:
                sleep(remaining / NS_PER_S)
            lateness[k] = clock() - target
            trivial_work(inputs)
    finally:
        gc.enable()
        gc.unfreeze()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"lateness_ns": lateness, "cpu_s": cpu, "wall_s": wall, "frames": n_frames,
            "preemptions": _involuntary_switches() - csw0}


def run_spin(frame_ms: int, n_frames: int) -> dict[str, Any]:
    """One segment of the reference: WallClock's sleep-then-spin written inline, no executive.

    Same ``Event.wait`` coarse phase and ``spin_us`` as WallClock, same work per
    frame: what the VM does to a spinning loop, without any flightai code.
    """
    lateness = np.zeros(n_frames, np.int64)
    frame_ns = frame_ms * NS_PER_MS
    spin_ns = SPIN_US * NS_PER_US
    inputs = {"x": np.zeros(8, np.float32)}
    event = threading.Event()
    clock = time.monotonic_ns
    gc.collect()
    gc.freeze()
    gc.disable()
    csw0 = _involuntary_switches()
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        base = clock()
        for k in range(n_frames):
            target = base + k * frame_ns
            while True:
                remaining = target - clock()
                if remaining <= spin_ns:
                    break
                event.wait(min(remaining - spin_ns, 50_000_000) / NS_PER_S)
            while clock() < target:
                pass
            lateness[k] = clock() - target
            trivial_work(inputs)
    finally:
        gc.enable()
        gc.unfreeze()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"lateness_ns": lateness, "cpu_s": cpu, "wall_s": wall, "frames": n_frames,
            "preemptions": _involuntary_switches() - csw0}


LOOPS = ("flightai", "sleep", "spin")
RUNNERS = {"flightai": run_flightai, "sleep": run_sleep, "spin": run_spin}


def _involuntary_switches() -> int:
    """Involuntary context switches of this process so far (preempted in the guest)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def _busy() -> None:
    """A tight Python loop: the competing load on the other core."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {(os.cpu_count() or 1) - 1})
    while True:
        pass


def measure_rate(hz: int, seconds: float) -> dict[str, Any]:
    """Alternate flightai and sleep segments at one rate; summarise both."""
    frame_ms = 1000 // hz
    seg_frames = round(seconds * hz / SEGMENTS)
    parts: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
    for s in range(SEGMENTS):
        order = LOOPS[s % len(LOOPS):] + LOOPS[:s % len(LOOPS)]
        for loop in order:
            parts[loop].append(RUNNERS[loop](frame_ms, seg_frames))
    out: dict[str, Any] = {"rate_hz": hz, "minor_frame_ms": frame_ms,
                           "frames_per_loop": seg_frames * SEGMENTS}
    for loop, segs in parts.items():
        late = np.concatenate([p["lateness_ns"] for p in segs])
        cpu = sum(p["cpu_s"] for p in segs)
        wall = sum(p["wall_s"] for p in segs)
        entry: dict[str, Any] = {**common.summary_us(late),
                                 "cpu_fraction": round(cpu / wall, 4),
                                 "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                                 "involuntary_context_switches": sum(p["preemptions"]
                                                                     for p in segs)}
        entry["segments"] = [
            {"p50_us": common.summary_us(p["lateness_ns"])["p50_us"],
             "p99_us": common.summary_us(p["lateness_ns"])["p99_us"],
             "max_us": common.summary_us(p["lateness_ns"])["max_us"],
             "involuntary_context_switches": p["preemptions"]} for p in segs]
        if loop == "flightai":
            entry["frame_slips"] = sum(p["frame_slips"] for p in segs)
            entry["frames_run"] = sum(p["frames"] for p in segs)
            entry["published"] = sum(p["published"] for p in segs)
            entry["health_ring_p99_us_last_segment"] = round(segs[-1]["health_p99_ns"] / 1e3, 3)
        out[loop] = entry
    f99, s99 = out["flightai"]["p99_us"], out["sleep"]["p99_us"]
    ratio = s99 / f99 if f99 > 0 else float("inf")
    out["measured"] = {"flightai_p99_us": f99, "sleep_p99_us": s99,
                       "p99_improvement_x": round(ratio, 2)}
    out["baseline"] = {"loop": "time.sleep until next deadline", **out["sleep"]}
    out["goal"] = (f"flightai p99 < {GOAL_P99_US:.0f} us and "
                   f"sleep p99 / flightai p99 >= {GOAL_RATIO:.0f}")
    out["pass_p99"] = bool(f99 < GOAL_P99_US)
    out["pass_ratio"] = bool(ratio >= GOAL_RATIO)
    out["pass"] = out["pass_p99"] and out["pass_ratio"]
    return out


def main() -> None:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-busy", action="store_true",
                        help="supplementary run without the busy process "
                             "(writes bench/results/jitter_no_busy.json)")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 30.0
    ncpu = os.cpu_count() or 1
    bench_cpus = {0} if ncpu > 1 else None
    if bench_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, bench_cpus)
    busy = None
    if not args.no_busy:
        busy = multiprocessing.get_context("spawn").Process(target=_busy, name="busy-loop",
                                                            daemon=True)
        busy.start()
        time.sleep(0.5)                           # let it get going
    load_before = common.loadavg()
    stat_before = common.cpu_times()
    results: list[dict[str, Any]] = []
    try:
        for hz in RATES_HZ:
            print(f"{hz} Hz: {seconds:.0f} s per loop in {SEGMENTS} alternating segments ...",
                  flush=True)
            results.append(measure_rate(hz, seconds))
    finally:
        if busy is not None:
            busy.terminate()
            busy.join(5)
    system = {"loadavg_before": load_before, "loadavg_after": common.loadavg(),
              "cpu_busy_fraction_per_cpu": common.cpu_busy_fractions(stat_before,
                                                                      common.cpu_times())}

    print()
    common.print_table(
        ["rate / loop", "p50 us", "p99 us", "p99.9 us", "max us", "CPU %", "preempted"],
        [[f"{r['rate_hz']} Hz {loop}", r[loop]["p50_us"], r[loop]["p99_us"],
          r[loop]["p999_us"], r[loop]["max_us"], 100 * r[loop]["cpu_fraction"],
          r[loop]["involuntary_context_switches"]]
         for r in results for loop in LOOPS])
    print(f"busy process: {'no' if busy is None else 'yes'}; system during the run: {system}")
    for r in results:
        for loop in LOOPS:
            print(f"{r['rate_hz']} Hz {loop} p99 per segment (us): "
                  f"{[s['p99_us'] for s in r[loop]['segments']]}")
    for r in results:
        m = r["measured"]
        print(f"{r['rate_hz']} Hz: flightai p99 {m['flightai_p99_us']:.1f} us "
              f"({common.verdict(r['pass_p99'])} < {GOAL_P99_US:.0f}), "
              f"{m['p99_improvement_x']:.1f}x better than sleep "
              f"({common.verdict(r['pass_ratio'])} >= {GOAL_RATIO:.0f}x), "
              f"frame slips {r['flightai']['frame_slips']}")
    path = common.write_json("jitter_no_busy" if args.no_busy else "jitter", {
        "quick": args.quick,
        "platform": common.platform_block(),
        "system_during_run": system,
        "conditions": {
            "busy_process": "none (--no-busy)" if busy is None else
                            "multiprocessing.Process (spawn) running `while True: pass`, "
                            f"pinned to CPU {ncpu - 1}, terminated at the end",
            "bench_affinity": sorted(bench_cpus) if bench_cpus else "unpinned",
            "seconds_per_loop_and_rate": seconds,
            "segments": SEGMENTS,
            "flightai": f"Executive + WallClock(spin_us={SPIN_US}), one FunctionTask per frame "
                        "(tanh of an 8-vector), freeze_gc = true, workers = 1; lateness = "
                        "WallClock.lateness_ns right after each wait_until",
            "sleep": "time.sleep(remaining) until base + k * frame (monotonic_ns), same work "
                     "per frame, gc frozen and disabled like the executive's",
            "spin": "reference only (not the goal's baseline): WallClock's sleep-then-spin "
                    f"(Event.wait, then spin the last {SPIN_US} us) written inline with no "
                    "executive, same work per frame, gc frozen and disabled",
            "timer_slack": "default (not changed)",
        },
        "results": {f"{r['rate_hz']}hz": r for r in results},
        "pass": all(r["pass"] for r in results),
    })
    print(f"\nwrote {path.relative_to(common.REPO_ROOT)}")


if __name__ == "__main__":
    main()
