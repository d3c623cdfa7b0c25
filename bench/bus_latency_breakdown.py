"""Where the sensor -> output round trip of ``bus_latency.py`` spends its time.

A diagnostic, not a goal check: the same two processes and lockstep loop as the
``flightai_output`` loop of ``bench/bus_latency.py`` (publish ``x`` at t, tick t and
t+F, wait for ``out.echo`` of t+F), with timestamps taken in both processes.
``time.perf_counter_ns`` is ``CLOCK_MONOTONIC`` on Linux, one clock for every
process of the machine, so the runtime's instants line up with the client's.

The runtime child wraps a few of its own functions to take them (``zmq.zmq_poll``
for the instant the frame thread wakes, ``ExternalClock.tick``,
``BusSink.publish``, ``BusSink.frame_done``, ``Executive._frame``); each wrapper
adds a few hundred ns, so the total is a little above ``bus_latency.py``'s.
The raw echo of ``bus_latency.py`` is measured in the same run for scale: its
client's send, and the round trip with nothing decoded or computed.

Segments, per round trip (every frame releases ``echo``, so frame t publishes the
output of the job released at t-F as well as its frame mark):

* ``client_publish``: ``Client.publish`` of the sample (its send wakes the client's
  ZeroMQ I/O thread);
* ``client_ticks``: the two ``Client.tick`` calls;
* ``to_runtime_wake``: last tick sent -> the runtime's frame thread returns from its
  poll (client I/O thread, TCP loopback, runtime I/O thread, frame thread wake-up);
* ``wake_to_tick_t``: reading and checking the sample and tick t;
* ``frame_t``: tick t -> end of frame t (its output and frame mark sent; tick t+F is
  read inside it, by the frame's input poll);
* ``to_output_sent``: end of frame t -> ``out.echo`` of t+F sent;
* ``output_send``: that publication alone (header, three frames handed to ZeroMQ);
* ``to_client``: output sent -> the client has decoded it (the frame mark of t
  arrives and is decoded first).

    python bench/bus_latency_breakdown.py [--quick]     # 5000 round trips (--quick: 500)
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bus
import _common as common
import bus_latency

from hil.ports import free_ports

SEGMENTS = ("client_publish", "client_ticks", "to_runtime_wake", "wake_to_tick_t", "frame_t",
            "to_output_sent", "output_send", "to_client", "total")

#: (what, mission instant, wall start, wall end) taken in the runtime
Stamp = tuple[str, int, int, int]


def _instrument(stamps: list[Stamp]) -> None:
    """Wrap the runtime's hand-over points so that each leaves a :data:`Stamp`."""
    from flightai.bus.outbound import BusSink
    from flightai.sched.clock import ExternalClock
    from flightai.sched.executive import Executive

    clock = time.perf_counter_ns
    woke = [0]
    poll = zmq.zmq_poll

    def zmq_poll(items: Any, timeout: int = -1) -> Any:
        ready = poll(items, timeout)
        if timeout and ready:
            woke[0] = clock()
        return ready

    zmq.zmq_poll = zmq_poll  # type: ignore[assignment]
    tick = ExternalClock.tick

    def on_tick(self: ExternalClock, t_ns: int) -> None:
        stamps.append(("tick", t_ns, woke[0], clock()))
        tick(self, t_ns)

    def timed(what: str, fn: Callable[..., None]) -> Callable[..., None]:
        def wrapper(self: Any, first: Any, *rest: Any) -> None:
            start = clock()
            fn(self, first, *rest)
            stamps.append((what, getattr(first, "t_ns", first), start, clock()))
        return wrapper

    ExternalClock.tick = on_tick  # type: ignore[method-assign]
    BusSink.publish = timed("output", BusSink.publish)  # type: ignore[method-assign]
    BusSink.frame_done = timed("mark", BusSink.frame_done)  # type: ignore[method-assign]
    Executive._frame = timed("frame", Executive._frame)  # type: ignore[method-assign]


class _Reporting:
    """A pipe end that adds the runtime's stamps to its ``stopped`` report."""

    def __init__(self, conn: Connection, stamps: list[Stamp]) -> None:
        self._conn = conn
        self._stamps = stamps

    def send(self, message: tuple[str, Any]) -> None:
        kind, payload = message
        if kind == "stopped":
            payload = {**payload, "stamps": self._stamps}
        self._conn.send((kind, payload))

    def recv(self) -> Any:
        return self._conn.recv()


def runtime_child(data: dict[str, Any], conn: Connection) -> None:
    """``bus_latency``'s runtime, instrumented."""
    stamps: list[Stamp] = []
    _instrument(stamps)
    _bus.runtime_child(data, bus_latency.make_tasks, _Reporting(conn, stamps))  # type: ignore[arg-type]


def flightai_round_trips(peer: bus_latency.FlightaiPeer, values: list[np.ndarray]
                         ) -> list[tuple[int, int, int, int, int]]:
    """The output loop with the client's instants: (t, start, published, ticked, decoded)."""
    client, clock, frame_ns = peer.client, time.perf_counter_ns, bus_latency.FRAME_NS
    rows = []
    t = peer.t_ns
    for value in values:
        start = clock()
        client.publish("x", t, value)
        published = clock()
        client.tick(t)
        client.tick(t + frame_ns)
        ticked = clock()
        while True:
            message = client.receive(bus_latency.TIMEOUT_MS)
            if message is None:
                raise RuntimeError(f"no out.echo for t={t + frame_ns}")
            if message.topic == "out.echo" and message.t_ns == t + frame_ns:
                break
        rows.append((t, start, published, ticked, clock()))
        peer._drain_to_frame(t + frame_ns)
        t += 2 * frame_ns
    peer.t_ns = t
    return rows


def segments(rows: list[tuple[int, int, int, int, int]], stamps: list[Stamp]
             ) -> dict[str, np.ndarray]:
    """Each round trip cut at the runtime's stamps (round trips missing one are left out)."""
    by = {(what, t): (start, end) for what, t, start, end in stamps}
    frame_ns = bus_latency.FRAME_NS
    out: dict[str, list[int]] = {name: [] for name in SEGMENTS}
    for t, start, published, ticked, decoded in rows:
        try:
            woke, tick_t = by[("tick", t)]
            _, frame_end = by[("frame", t)]
            sent_start, sent = by[("output", t + frame_ns)]
        except KeyError:
            continue
        parts = (published - start, ticked - published, woke - ticked, tick_t - woke,
                 frame_end - tick_t, sent - frame_end, sent - sent_start, decoded - sent,
                 decoded - start)
        for name, value in zip(SEGMENTS, parts, strict=True):
            out[name].append(value)
    return {name: np.array(values, np.int64) for name, values in out.items()}


def raw_reference(n: int) -> dict[str, dict[str, float]]:
    """``bus_latency``'s raw echo: its client's send alone, and the round trip."""
    ctx = multiprocessing.get_context("spawn")
    pull_port, pub_port = free_ports(2)
    parent, child = ctx.Pipe()
    echo = ctx.Process(target=bus_latency.echo_child, args=(pull_port, pub_port, child),
                       daemon=True)
    echo.start()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        _bus.expect(parent, "ready")
        peer = bus_latency.RawPeer(context, pull_port, pub_port)
        peer.join()
        round_trips = np.zeros(n, np.int64)
        peer.one(min(n, 200), round_trips[:min(n, 200)])
        peer.one(n, round_trips)
        sends = np.zeros(n, np.int64)
        push, sub, frames, clock = peer.push, peer.sub, peer.sample, time.perf_counter_ns
        for i in range(n):
            start = clock()
            push.send_multipart(frames)
            sends[i] = clock() - start
            sub.recv_multipart()
        peer.stop()
        _bus.expect(parent, "stopped")
    finally:
        context.destroy(linger=0)
        echo.join(10)
    return {"client_send": common.summary_us(sends), "round_trip": common.summary_us(round_trips)}


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    n = 500 if args.quick else 5000
    heap = _bus.set_heap(False)
    ctx = multiprocessing.get_context("spawn")
    data = bus_latency.mission()
    parent, child = ctx.Pipe()
    runtime = ctx.Process(target=runtime_child, args=(data, child), daemon=True)
    runtime.start()
    peer: bus_latency.FlightaiPeer | None = None
    try:
        _bus.expect(parent, "ready")
        peer = bus_latency.FlightaiPeer(data["bus"])
        peer.join()
        rng = np.random.default_rng(common.SEED)
        values = [rng.normal(size=3).astype(np.float32) for _ in range(n + 200)]
        flightai_round_trips(peer, values[:200])  # warm-up
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            rows = flightai_round_trips(peer, values[200:])
        finally:
            gc.enable()
            gc.unfreeze()
        parent.send("stop")
        stamps = _bus.expect(parent, "stopped")["stamps"]
    finally:
        if peer is not None:
            peer.close()
        runtime.join(10)
    cut = segments(rows, stamps)
    table: Mapping[str, dict[str, float]] = {name: common.summary_us(values)
                                              for name, values in cut.items()}
    raw = raw_reference(n)
    common.print_table(("segment", "p50 us", "p90 us", "p99 us"),
                       [(name, s["p50_us"], s["p90_us"], s["p99_us"]) for name, s in table.items()]
                       + [(f"raw {name}", s["p50_us"], s["p90_us"], s["p99_us"])
                          for name, s in raw.items()])
    print(f"{len(cut['total'])} of {len(rows)} round trips matched to the runtime's stamps; "
          f"heap: {heap}")
    path = common.write_json("bus_latency_breakdown", {
        "quick": args.quick, "heap": heap,
        "platform": {**common.platform_block(), "pyzmq": zmq.__version__,
                     "libzmq": zmq.zmq_version()},
        "round_trips": len(cut["total"]), "segments_us": table, "raw_us": raw,
    })
    print(f"\nwrote {path.relative_to(common.REPO_ROOT)}")


if __name__ == "__main__":
    main()
