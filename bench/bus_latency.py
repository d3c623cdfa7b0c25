"""Round-trip latency of a small sensor message through the runtime's bus, against raw pyzmq.

Two processes (``multiprocessing`` spawn), as deployed: this process is the
flight software (a :class:`flightai.client.Client`), a child process runs the
runtime (``BusServer`` + executive on the ``external`` clock, lockstep,
1 ms minor frame, one frame task ``echo`` with ``y = x`` on a float32[3]
input). Everything is on ``tcp://127.0.0.1`` with ports chosen free at start.

flightai, two figures, timed in the client from before the first send to the
receipt of the awaited message:

* ``frame``: publish ``x`` at t and tick t, until the frame mark of t arrives
  (the runtime has decoded both, released ``echo`` on the sample, published
  the frame's messages);
* ``output``: publish ``x`` at t, tick t and tick t+F, until ``out.echo`` of
  t+F arrives carrying ``y`` computed from that very sample (checked): the
  whole sensor -> output path of a task whose deadline is one frame.

Baseline: the same process pair with raw pyzmq, a child that PULLs and
re-PUBlishes each multipart message untouched (``recv_multipart`` then
``send_multipart``, nothing decoded); the client PUSHes the same three frames
(topic, msgpack header, 12-byte array) that ``Client.publish`` sends and waits
on SUB. A second raw reference sends a sample and a tick and waits for both
back: the message count of the ``frame`` path without any runtime work.

The four loops alternate in blocks (order rotated) so VM noise hits all of
them; the client's garbage collector is frozen and disabled while measuring
(the runtime's is, by ``freeze_gc``). The whole measurement is repeated with
fresh processes; each figure is the median over repeats, with its spread.
Goal: the full sensor -> output path adds under 150 us at p99 to the raw
round trip.

    python bench/bus_latency.py [--quick] [--default-heap]
    # 3 repeats x 5000 round trips per loop; --quick: 1 repeat x 500. Every process keeps
    # its heap (runtime.process.keep_heap) unless --default-heap (results then go to
    # bench/results/bus_latency_default_heap.json).
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bus
import _common as common

from flightai.bus.wire import encode
from flightai.client import Client
from flightai.pytask import FunctionTask
from flightai.runtime import LoadedTasks
from flightai.timebase import NS_PER_MS
from hil.ports import free_ports

FRAME_MS = 1
FRAME_NS = FRAME_MS * NS_PER_MS
GOAL_ADDED_P99_US = 150.0
LOOPS = ("raw", "raw_2in_2out", "flightai_frame", "flightai_output")
TIMEOUT_MS = 5000
ECHO_TARGET = "bus_latency.py:echo"


def echo(inputs: Mapping[str, npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[Any]]:
    """The frame task: y = x (float32[3])."""
    return {"y": inputs["x"]}



def mission() -> dict[str, Any]:
    """Lockstep external clock, 1 ms frame, ``echo`` every frame, bus on free loopback ports."""
    sensors, outputs, commands = free_ports(3)
    return {
        "mission": {"name": "bus-latency"},
        "runtime": {"minor_frame_ms": FRAME_MS, "clock": "external", "workers": 1,
                    "freeze_gc": True,
                    # the client pauses between blocks: no tick timeout, no SAFE
                    "external": {"tick_timeout_ms": 600_000, "late_jobs": "wait"}},
        "safe": {"on_tick_timeout": False},
        "signals": [{"name": "x", "dtype": "float32", "shape": [3], "input": True},
                    {"name": "y", "dtype": "float32", "shape": [3]}],
        "tasks": [{"name": "echo", "function": ECHO_TARGET, "period_ms": FRAME_MS,
                   "inputs": {"x": "x"}, "outputs": {"y": "y"}}],
        "bus": {"sensors": f"tcp://127.0.0.1:{sensors}",
                "outputs": f"tcp://127.0.0.1:{outputs}",
                "commands": f"tcp://127.0.0.1:{commands}"},
    }


# -- the two child processes ----------------------------------------------------------------

def make_tasks() -> LoadedTasks:
    """The bench's task bodies, built in the runtime child."""
    return LoadedTasks({"echo": FunctionTask(ECHO_TARGET, echo)}, {})


def echo_child(pull_port: int, pub_port: int, conn: Connection) -> None:
    """The raw baseline's far end: PULL -> PUB, every multipart message forwarded untouched."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        pull = context.socket(zmq.PULL)
        pub = context.socket(zmq.PUB)
        for s in (pull, pub):
            s.linger = 0
        pull.bind(f"tcp://127.0.0.1:{pull_port}")
        pub.bind(f"tcp://127.0.0.1:{pub_port}")
        conn.send(("ready", None))
        forwarded = 0
        while True:
            frames = pull.recv_multipart()
            if frames[0] == b"__stop__":
                break
            pub.send_multipart(frames)
            forwarded += 1
        conn.send(("stopped", {"forwarded": forwarded}))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        context.destroy(linger=0)


# -- the client side --------------------------------------------------------------------------

class FlightaiPeer:
    """The client's end of the flightai loops; mission time only ever advances."""

    def __init__(self, bus: Mapping[str, str]) -> None:
        self.client = Client(bus["sensors"], bus["outputs"], bus["commands"], name="bench",
                             timeout_ms=TIMEOUT_MS)
        self.client.subscribe(["out.", "frame"])
        self.t_ns = 0
        self.mismatches = 0
        self.outputs_checked = 0

    def join(self) -> None:
        """Tick until a frame mark comes back (the SUB has joined), then drain."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.client.tick(self.t_ns)
            self.t_ns += FRAME_NS
            message = self.client.receive(50)
            if message is not None and message.topic == "frame":
                self._drain_to_frame(self.t_ns - FRAME_NS)
                return
        raise RuntimeError("no frame mark from the runtime within 30 s")

    def _drain_to_frame(self, t_ns: int) -> None:
        while True:
            message = self.client.receive(TIMEOUT_MS)
            if message is None:
                return
            if message.topic == "frame" and message.t_ns == t_ns:
                return

    def frame(self, values: list[npt.NDArray[np.float32]], out: npt.NDArray[np.int64]) -> None:
        """Sample + tick t, until the frame mark of t."""
        client = self.client
        clock = time.perf_counter_ns
        t = self.t_ns
        for i, value in enumerate(values):
            t0 = clock()
            client.publish("x", t, value)
            client.tick(t)
            while True:
                message = client.receive(TIMEOUT_MS)
                if message is None:
                    raise RuntimeError(f"no frame mark for t={t}")
                if message.topic == "frame" and message.t_ns == t:
                    break
            out[i] = clock() - t0
            t += FRAME_NS
        self.t_ns = t

    def output(self, values: list[npt.NDArray[np.float32]], out: npt.NDArray[np.int64]) -> None:
        """Sample + tick t + tick t+F, until ``out.echo`` of t+F (its value is checked)."""
        client = self.client
        clock = time.perf_counter_ns
        t = self.t_ns
        for i, value in enumerate(values):
            t0 = clock()
            client.publish("x", t, value)
            client.tick(t)
            client.tick(t + FRAME_NS)
            while True:
                message = client.receive(TIMEOUT_MS)
                if message is None:
                    raise RuntimeError(f"no out.echo for t={t + FRAME_NS}")
                if message.topic == "out.echo" and message.t_ns == t + FRAME_NS:
                    break
            out[i] = clock() - t0
            self.outputs_checked += 1
            if (message.fields.get("t_release_ns") != t
                    or not np.array_equal(message.arrays[0][1], value)):
                self.mismatches += 1
            self._drain_to_frame(t + FRAME_NS)   # untimed: the frame mark that follows
            t += 2 * FRAME_NS
        self.t_ns = t

    def close(self) -> None:
        """Close the client's sockets."""
        self.client.close()


class RawPeer:
    """The client's end of the raw loops: PUSH the same frames, wait on SUB."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], pull_port: int,
                 pub_port: int) -> None:
        self.push = context.socket(zmq.PUSH)
        self.sub = context.socket(zmq.SUB)
        for s in (self.push, self.sub):
            s.linger = 0
        self.push.connect(f"tcp://127.0.0.1:{pull_port}")
        self.sub.connect(f"tcp://127.0.0.1:{pub_port}")
        self.sub.subscribe(b"")
        packer = msgpack.Packer()
        self.sample = encode("x", 0, 0, [("value", np.arange(3, dtype=np.float32))],
                             packer=packer)
        self.sample = [bytes(f) for f in self.sample]
        self.tick = [bytes(f) for f in encode("tick", 0, 0, packer=packer)]

    def join(self) -> None:
        """Send until a message comes back (the SUB has joined), then drain."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.push.send_multipart(self.sample)
            if self.sub.poll(50):
                while self.sub.poll(200):
                    self.sub.recv_multipart()
                return
        raise RuntimeError("no echo from the raw child within 30 s")

    def one(self, n: int, out: npt.NDArray[np.int64]) -> None:
        """PUSH one sample, wait for it on SUB."""
        push, sub, frames = self.push, self.sub, self.sample
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            push.send_multipart(frames)
            sub.recv_multipart()
            out[i] = clock() - t0

    def two(self, n: int, out: npt.NDArray[np.int64]) -> None:
        """PUSH a sample and a tick, wait for both on SUB."""
        push, sub, frames, tick = self.push, self.sub, self.sample, self.tick
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            push.send_multipart(frames)
            push.send_multipart(tick)
            sub.recv_multipart()
            sub.recv_multipart()
            out[i] = clock() - t0

    def stop(self) -> None:
        """Tell the echo child to stop."""
        self.push.send_multipart([b"__stop__"])


def measure(n: int, blocks: int) -> dict[str, Any]:
    """Start both children, alternate the four loops in blocks, stop both; raw samples (ns)."""
    ctx = multiprocessing.get_context("spawn")
    data = mission()
    rt_parent, rt_child = ctx.Pipe()
    pull_port, pub_port = free_ports(2)
    echo_parent, echo_child_conn = ctx.Pipe()
    runtime = ctx.Process(target=_bus.runtime_child, args=(data, make_tasks, rt_child),
                          name="flightai-runtime",
                          daemon=True)
    raw = ctx.Process(target=echo_child, args=(pull_port, pub_port, echo_child_conn),
                      name="raw-echo", daemon=True)
    runtime.start()
    raw.start()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    fa: FlightaiPeer | None = None
    samples = {loop: np.zeros(n, np.int64) for loop in LOOPS}
    per_block: dict[str, list[dict[str, float]]] = {loop: [] for loop in LOOPS}
    child_stats: dict[str, Any] = {}
    try:
        _bus.expect(rt_parent, "ready")
        _bus.expect(echo_parent, "ready")
        fa = peer = FlightaiPeer(data["bus"])
        peer.join()
        raw_peer = RawPeer(context, pull_port, pub_port)
        raw_peer.join()
        size = n // blocks
        rng = np.random.default_rng(common.SEED)
        values = [rng.normal(size=3).astype(np.float32) for _ in range(n)]
        # warm-up of every loop (not recorded)
        scratch = np.zeros(200, np.int64)
        raw_peer.one(200, scratch)
        raw_peer.two(200, scratch)
        peer.frame(values[:200], scratch)
        peer.output(values[:200], scratch)
        runners: dict[str, Callable[[int, int], None]] = {
            "raw": lambda a, b: raw_peer.one(b - a, samples["raw"][a:b]),
            "raw_2in_2out": lambda a, b: raw_peer.two(b - a, samples["raw_2in_2out"][a:b]),
            "flightai_frame": lambda a, b: peer.frame(values[a:b],
                                                      samples["flightai_frame"][a:b]),
            "flightai_output": lambda a, b: peer.output(values[a:b],
                                                        samples["flightai_output"][a:b]),
        }
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            for k in range(blocks):
                a, b = k * size, (k + 1) * size if k < blocks - 1 else n
                order = LOOPS[k % len(LOOPS):] + LOOPS[:k % len(LOOPS)]
                for loop in order:
                    runners[loop](a, b)
                    s = common.summary_us(samples[loop][a:b])
                    per_block[loop].append({"p50_us": s["p50_us"], "p99_us": s["p99_us"],
                                            "max_us": s["max_us"]})
        finally:
            gc.enable()
            gc.unfreeze()
        checked, mismatches = peer.outputs_checked, peer.mismatches
        raw_peer.stop()
        rt_parent.send("stop")
        child_stats["runtime"] = _bus.expect(rt_parent, "stopped")
        child_stats["raw_echo"] = _bus.expect(echo_parent, "stopped")
    finally:
        if fa is not None:
            fa.close()
        context.destroy(linger=0)
        for proc in (runtime, raw):
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return {"samples": samples, "per_block": per_block, "children": child_stats,
            "outputs_checked": checked, "output_mismatches": mismatches}


def added_figures(run: Mapping[str, Any]) -> dict[str, Any]:
    """One repeat's loop statistics and what flightai adds to the raw round trip."""
    stats = {loop: common.summary_us(run["samples"][loop]) for loop in LOOPS}
    flightai = ("flightai_frame", "flightai_output")
    added = {loop: round(stats[loop]["p99_us"] - stats["raw"]["p99_us"], 3) for loop in flightai}
    added_p50 = {loop: round(stats[loop]["p50_us"] - stats["raw"]["p50_us"], 3)
                 for loop in flightai}
    # the same difference block by block (each flightai block next to its raw block, so both
    # saw the same VM weather): the median over blocks is robust to one stalled raw block
    added_blocks = {loop: [round(f["p99_us"] - r["p99_us"], 3)
                           for f, r in zip(run["per_block"][loop], run["per_block"]["raw"],
                                           strict=True)]
                    for loop in flightai}
    return {"stats": stats, "added_p99_us": added, "added_p50_us": added_p50,
            "added_p99_us_per_block": added_blocks,
            "added_p99_us_block_median": {loop: round(float(np.median(v)), 3)
                                          for loop, v in added_blocks.items()}}


def _median_spread(values: list[float]) -> dict[str, Any]:
    return {"median": round(float(np.median(values)), 3),
            "spread": [round(min(values), 3), round(max(values), 3)],
            "each": [round(v, 3) for v in values]}


def main() -> None:
    args = _bus.parse_args(__doc__.splitlines()[0])
    heap = _bus.set_heap(args.default_heap)
    n = 500 if args.quick else 5000
    blocks = 5 if args.quick else 10
    repeats = 1 if args.quick else 3
    print(f"{repeats} repeat(s), each with fresh processes: {n} round trips per loop in "
          f"{blocks} alternating blocks ...", flush=True)
    load_before = common.loadavg()
    stat_before = common.cpu_times()
    runs = [measure(n, blocks) for _ in range(repeats)]
    system = {"loadavg_before": load_before, "loadavg_after": common.loadavg(),
              "cpu_busy_fraction_per_cpu": common.cpu_busy_fractions(stat_before,
                                                                      common.cpu_times())}
    figures = [added_figures(run) for run in runs]
    # every round trip of every repeat, for the table
    stats = {loop: common.summary_us(np.concatenate([run["samples"][loop] for run in runs]))
             for loop in LOOPS}
    flightai = ("flightai_frame", "flightai_output")
    across = {key: {loop: _median_spread([f[key][loop] for f in figures]) for loop in flightai}
              for key in ("added_p99_us", "added_p99_us_block_median", "added_p50_us")}
    added = {loop: across["added_p99_us"][loop]["median"] for loop in flightai}
    added_block_median = {loop: across["added_p99_us_block_median"][loop]["median"]
                          for loop in flightai}
    verdicts = {loop: bool(added[loop] < GOAL_ADDED_P99_US
                           and added_block_median[loop] < GOAL_ADDED_P99_US) for loop in flightai}
    checked = sum(run["outputs_checked"] for run in runs)
    mismatches = sum(run["output_mismatches"] for run in runs)
    runtime_stats = [run["children"]["runtime"] for run in runs]
    valid = mismatches == 0 and not any(r["bus"]["rejects"] for r in runtime_stats)

    print()
    common.print_table(
        ["loop (all repeats)", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us"],
        [[loop, stats[loop]["p50_us"], stats[loop]["p90_us"], stats[loop]["p99_us"],
          stats[loop]["p999_us"], stats[loop]["max_us"]] for loop in LOOPS])
    for k, f in enumerate(figures):
        print(f"repeat {k}: p50/p99 us " + ", ".join(
            f"{loop} {f['stats'][loop]['p50_us']:.0f}/{f['stats'][loop]['p99_us']:.0f}"
            for loop in LOOPS))
    print(f"outputs checked {checked}, value/t_release mismatches {mismatches}; runtime bus "
          f"counters {[r['bus'] for r in runtime_stats]}; output drops "
          f"{[r['output_drops'] for r in runtime_stats]}")
    print(f"system during the run: {system}")
    for loop in flightai:
        a, b, c = (across[key][loop] for key in ("added_p99_us", "added_p99_us_block_median",
                                                  "added_p50_us"))
        print(f"{loop}: added p99 {a['median']:.1f} us over raw (median of {repeats} repeats, "
              f"spread {a['spread'][0]:.0f}-{a['spread'][1]:.0f}), median of per-block "
              f"differences {b['median']:.1f} us (spread {b['spread'][0]:.0f}-"
              f"{b['spread'][1]:.0f}), added p50 {c['median']:.1f} us "
              f"({common.verdict(verdicts[loop])}: both p99 figures < {GOAL_ADDED_P99_US:.0f} us)")

    message_bytes = sum(memoryview(f).nbytes  # an array frame counts its bytes, not len()
                        for f in encode("x", 0, 0, [("value", np.zeros(3, np.float32))]))
    print(f"heap: {heap}")
    path = common.write_json(_bus.result_name("bus_latency", args.default_heap), {
        "quick": args.quick, "heap": heap,
        "platform": {**common.platform_block(), "pyzmq": zmq.__version__,
                     "libzmq": zmq.zmq_version(),
                     "msgpack": ".".join(str(v) for v in msgpack.version)},
        "system_during_run": system,
        "conditions": {
            "repeats": repeats,
            "round_trips_per_loop_and_repeat": n,
            "blocks": blocks,
            "block_order": "rotated each block: " + ", ".join(LOOPS),
            "transport": "tcp://127.0.0.1, ports chosen free at start",
            "processes": "client = this process; far end = a multiprocessing spawn child "
                         "(flightai runtime, or the raw echo), both alive for a whole repeat; "
                         "each repeat starts fresh children",
            "message": "sensor x float32[3]: topic frame, msgpack header, 12-byte array frame "
                       f"({message_bytes} bytes in all)",
            "flightai_runtime": f"BusServer + Executive, external clock (lockstep, late_jobs "
                                f"wait), minor frame {FRAME_MS} ms, one frame task "
                                "echo (y = x) every frame, workers 1, freeze_gc, health every "
                                "100 ms of mission time (not subscribed)",
            "flightai_client": "flightai.client.Client: publish + tick (+ tick), receive() "
                               "decodes every message, SUB on 'out.' and 'frame'",
            "flightai_frame": "publish x@t, tick t -> frame mark t received",
            "flightai_output": "publish x@t, tick t, tick t+F -> out.echo of t+F received "
                               "(y and t_release checked against the sample); the frame mark "
                               "of t+F is then drained untimed",
            "raw": "pre-encoded identical frames, PUSH -> child PULL.recv_multipart -> "
                   "PUB.send_multipart -> SUB.recv_multipart, nothing decoded",
            "raw_2in_2out": "reference: the sample and a tick pushed, both echoed back",
            "client_gc": "frozen and disabled while measuring",
            "timer": "time.perf_counter_ns around each round trip in the client",
        },
        "results": {loop: stats[loop] for loop in LOOPS},
        "repeats": [{"results": {loop: {**f["stats"][loop], "per_block": run["per_block"][loop]}
                                 for loop in LOOPS},
                     **{key: f[key] for key in ("added_p99_us", "added_p50_us",
                                                "added_p99_us_per_block",
                                                "added_p99_us_block_median")}}
                    for f, run in zip(figures, runs, strict=True)],
        "measured": {
            "flightai_output_p99_us": stats["flightai_output"]["p99_us"],
            "flightai_frame_p99_us": stats["flightai_frame"]["p99_us"],
            "added_p99_us": added,
            "added_p99_us_block_median": added_block_median,
            "across_repeats": across,
        },
        "baseline": {"loop": "raw pyzmq PUSH->PULL->PUB->SUB echo, same frames",
                     **stats["raw"]},
        "goal": f"flightai p99 - raw p99 < {GOAL_ADDED_P99_US:.0f} us for a small message, "
                "both pooled over each repeat's round trips and as the median of per-block "
                "differences, each taken as the median over repeats (applied to the full "
                "sensor -> output path, flightai_output)",
        "pass_by_loop": verdicts,
        "pass": verdicts["flightai_output"] and valid,
        "checks": {"outputs_checked": checked, "output_mismatches": mismatches,
                   "runtime": runtime_stats,
                   "raw_echo": [run["children"]["raw_echo"] for run in runs]},
    })
    print(f"\nwrote {path.relative_to(common.REPO_ROOT)}")


if __name__ == "__main__":
    main()
