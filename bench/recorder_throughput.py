"""Recorder throughput against the bare ``mcap`` writer, on the same messages in the same run.

Two streams, encoded once with :func:`flightai.bus.wire.encode` and fed to every loop:
``small``, ``imu.dv`` float64[3] samples (a 134-byte message), and ``256 KiB``,
``camera.image`` float32[256, 256] images (the LTD-1 camera). Loops, each writing a
fresh MCAP file (no compression, CRCs on, 1 MiB chunks) in a temporary folder:

* ``mcap_bare`` (the goal's baseline): ``mcap.writer.Writer.add_message`` of the
  message data already packed as the recorder stores it, then ``finish``;
* ``foxglove_bare`` (reference): foxglove-sdk's MCAP writer, which the recorder
  uses, logging the same pre-packed data: the recorder's own overhead;
* ``record``: :meth:`hil.record.Recorder.record` of each message's frames (the
  ``record_sent`` path), default options (views on) but a queue as long as the stream
  (a burst of the whole stream would otherwise overflow the default 100 000 and
  drop), then ``close``;
* ``record_no_views``: the same with ``views=False``;
* ``subscribe``: :meth:`~hil.record.Recorder.subscribe` (the writer thread reads
  the SUB socket) to a child process that publishes the frames on
  ``tcp://127.0.0.1`` once told to go (high-water marks 0: nothing dropped), timed
  from go to ``close``. The publisher is as cheap as ``flightai.client.Client``'s
  publish path: frames encoded beforehand, sent frame by frame with plain int flags;
* ``sub_bare`` (the subscribe path's raw baseline): the simplest SUB-to-MCAP loop,
  one thread: pyzmq receives frame by frame (``recv(copy=False)``, ``Frame.more``,
  as the recorder does), ``pack_frames``, ``Writer.add_message`` of the bare ``mcap``
  writer;
* ``recv_only`` (reference): the same receive loop alone, writing nothing: the
  ceiling of any recorder fed by a pyzmq SUB socket on this machine.

The socket loops (``subscribe``, ``sub_bare``, ``recv_only``) share one publisher;
beside the ratio to ``mcap_bare`` (the goal's), each has its ratio to ``sub_bare``
and to ``recv_only``.

Every loop is timed from its first message to its file being finished, and checks
that it wrote every message. Loops alternate within each repetition (order
rotated); a figure is the median over repetitions. Goal: ``record`` and
``subscribe`` at least 80 % of ``mcap_bare``'s messages per second.

    python bench/recorder_throughput.py [--quick]    # 5 repetitions; --quick: 1, a tenth
"""

from __future__ import annotations

import gc
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from foxglove import Context, open_mcap
from foxglove.mcap import MCAPWriteOptions
from mcap.writer import CompressionType, Writer

from flightai.bus.sockets import COPY_THRESHOLD, SNDMORE
from flightai.bus.wire import encode
from hil.ports import free_ports
from hil.record import Recorder, RecorderOptions, Recording, pack_frames

GOAL = 0.80
CHUNK_BYTES = 1 << 20
LOOPS = ("mcap_bare", "foxglove_bare", "record", "record_no_views", "subscribe", "sub_bare",
         "recv_only")
SOCKET_LOOPS = ("subscribe", "sub_bare", "recv_only")


def stream(kind: str, n: int) -> list[list[bytes]]:
    """The messages of one stream, as the frames a sender puts on the wire."""
    rng = np.random.default_rng(common.SEED)
    if kind == "small":
        values = rng.random((n, 3))
        frames = [encode("imu.dv", i, i * 10_000_000, [("value", values[i])]) for i in range(n)]
    else:
        image = rng.random((256, 256), dtype=np.float32)
        frames = [encode("camera.image", i, i * 200_000_000, [("value", image + i)])
                  for i in range(n)]
    return [[f if isinstance(f, bytes) else f.tobytes() for f in m] for m in frames]


def mcap_bare(path: Path, messages: list[list[bytes]], data: list[bytes]) -> float:
    """The bare ``mcap`` writer: pre-packed data, one channel."""
    topic = messages[0][0].decode()
    start = time.perf_counter()
    with path.open("wb") as f:
        writer = Writer(f, chunk_size=CHUNK_BYTES, compression=CompressionType.NONE)
        writer.start(profile="flightai", library="bench")
        channel = writer.register_channel(topic, "msgpack", 0, {"direction": "to_runtime"})
        for seq, payload in enumerate(data):
            writer.add_message(channel, time.time_ns(), payload, 0, sequence=seq)
        writer.finish()  # type: ignore[no-untyped-call]
    return time.perf_counter() - start


def foxglove_bare(path: Path, messages: list[list[bytes]], data: list[bytes]) -> float:
    """foxglove-sdk's MCAP writer, pre-packed data, one channel."""
    topic = messages[0][0].decode()
    start = time.perf_counter()
    context = Context()
    writer = open_mcap(path, allow_overwrite=True, context=context,
                       writer_options=MCAPWriteOptions(compression=None, profile="flightai",
                                                       chunk_size=CHUNK_BYTES))
    log = context._create_channel(topic, message_encoding="msgpack",
                                  metadata={"direction": "to_runtime"}).log
    for payload in data:
        log(payload, time.time_ns())
    writer.close()
    return time.perf_counter() - start


def record(path: Path, messages: list[list[bytes]], views: bool = True) -> float:
    """The recorder's ``record`` path, from the first call to ``close``."""
    start = time.perf_counter()
    recorder = Recorder(path, RecorderOptions(views=views, queue_size=len(messages) + 16))
    record_sent = recorder.record_sent
    for frames in messages:
        record_sent(frames)
    stats = recorder.close()
    elapsed = time.perf_counter() - start
    _check(stats.messages, stats.drops, messages)
    return elapsed


def _check(counts: dict[str, int], drops: int, messages: list[list[bytes]]) -> None:
    topic = messages[0][0].decode()
    if counts.get(topic) != len(messages) or drops:
        raise RuntimeError(f"wrote {counts} with {drops} drops, expected {len(messages)}")


def publisher(endpoint: str, kind: str, n: int, pipe: Connection) -> None:
    """Child process: bind PUB, wait for go, publish the stream, report.

    As ``flightai.client.Client.publish`` sends: frame by frame, plain int flags, the
    array zero-copy from :data:`~flightai.bus.sockets.COPY_THRESHOLD` bytes on.
    """
    messages = stream(kind, n)
    copy = len(messages[0][2]) < COPY_THRESHOLD
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.sndhwm = 0
    pub.bind(endpoint)
    send = pub.send
    pipe.send("bound")
    while pipe.recv() == "go":
        for topic, header, array in messages:
            send(topic, SNDMORE)
            send(header, SNDMORE)
            send(array, 0, copy)
        pipe.send("sent")
    pub.close(linger=10_000)
    context.term()


def subscribe(path: Path, endpoint: str, pipe: Connection, n: int) -> float:
    """The recorder's SUB path: from go to ``close``."""
    # the queue is for record(); as long as the stream, the bench also runs on a recorder
    # whose SUB reader thread queues what it reads (A/B against older code)
    recorder = Recorder(path, RecorderOptions(queue_size=n + 16))
    recorder.subscribe(endpoint, rcvhwm=0)
    time.sleep(1.0)  # the subscription reaches the publisher (ZeroMQ's late joiner)
    start = time.perf_counter()
    pipe.send("go")
    while recorder.written < n:
        time.sleep(0.001)
    stats = recorder.close()
    elapsed = time.perf_counter() - start
    pipe.recv()
    if sum(stats.messages.values()) != n or stats.drops:
        raise RuntimeError(f"subscribe wrote {stats.messages}, {stats.drops} drops")
    return elapsed


def sub_bare(path: Path, endpoint: str, pipe: Connection, n: int, write: bool = True) -> float:
    """The simplest SUB-to-MCAP loop, one thread: the subscribe path's raw baseline.

    It receives as the recorder does (frame by frame, ``Frame.more``; a frame of
    :data:`~flightai.bus.sockets.COPY_THRESHOLD` bytes or more packed from its buffer).
    With ``write`` False it only receives (the ``recv_only`` reference); the file is
    still created, empty of messages.
    """
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.subscribe(b"")
    sub.connect(endpoint)
    time.sleep(1.0)
    with path.open("wb") as f:
        writer = Writer(f, chunk_size=CHUNK_BYTES, compression=CompressionType.NONE)
        writer.start(profile="flightai", library="bench")
        channels: dict[bytes, int] = {}
        recv = sub.recv
        start = time.perf_counter()
        pipe.send("go")
        for _ in range(n):
            frame = recv(0, False)
            frames: list[Any] = [frame.bytes]
            while frame.more:
                frame = recv(0, False)
                frames.append(frame.bytes if len(frame) < COPY_THRESHOLD else frame.buffer)
            if not write:
                continue
            channel = channels.get(frames[0])
            if channel is None:
                channel = channels[frames[0]] = writer.register_channel(
                    frames[0].decode(), "msgpack", 0)
            writer.add_message(channel, time.time_ns(), pack_frames(frames[1:]), 0)
        writer.finish()  # type: ignore[no-untyped-call]
        elapsed = time.perf_counter() - start
    pipe.recv()
    sub.close()
    context.term()
    return elapsed


def run_stream(kind: str, n: int, repetitions: int, folder: Path) -> dict[str, Any]:
    messages = stream(kind, n)
    data = [pack_frames(m[1:]) for m in messages]
    (port,) = free_ports(1)
    endpoint = f"tcp://127.0.0.1:{port}"
    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=publisher, args=(endpoint, kind, n, child), daemon=True)
    proc.start()
    assert parent.recv() == "bound"
    loops: dict[str, Callable[[Path], float]] = {
        "mcap_bare": lambda p: mcap_bare(p, messages, data),
        "foxglove_bare": lambda p: foxglove_bare(p, messages, data),
        "record": lambda p: record(p, messages),
        "record_no_views": lambda p: record(p, messages, views=False),
        "subscribe": lambda p: subscribe(p, endpoint, parent, n),
        "sub_bare": lambda p: sub_bare(p, endpoint, parent, n),
        "recv_only": lambda p: sub_bare(p, endpoint, parent, n, write=False),
    }
    rates: dict[str, list[float]] = {name: [] for name in LOOPS}
    try:
        for rep in range(repetitions):
            order = LOOPS[rep % len(LOOPS):] + LOOPS[:rep % len(LOOPS)]
            for name in order:
                path = folder / f"{kind}-{name}.mcap"
                gc.collect()
                elapsed = loops[name](path)
                if rep == 0 and name in ("record", "subscribe"):
                    Recording(path)  # the file opens, every CRC valid
                path.unlink()
                rates[name].append(n / elapsed)
                print(f"  {kind:6} rep {rep}  {name:16} {n / elapsed:>10.0f} msg/s", flush=True)
    finally:
        parent.send("stop")
        proc.join(30)
    return summarise(kind, n, rates, messages)


def summarise(kind: str, n: int, rates: dict[str, list[float]],
              messages: list[list[bytes]]) -> dict[str, Any]:
    base = rates["mcap_bare"]
    fox = rates["foxglove_bare"]
    out: dict[str, Any] = {"messages_per_run": n,
                           "message_bytes": sum(map(len, messages[0])),
                           "loops": {}}
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        out["loops"][name] = {
            "messages_per_s": round(statistics.median(values)),
            "messages_per_s_each": [round(v) for v in values],
            "ratio_to_mcap_bare": round(statistics.median(ratios), 3),
            "ratio_to_mcap_bare_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "ratio_to_foxglove_bare": round(statistics.median(
                [v / f for v, f in zip(values, fox, strict=True)]), 3),
            "mb_per_s": round(statistics.median(values) * out["message_bytes"] / 1e6, 1),
        }
        if name in SOCKET_LOOPS:  # against the raw SUB loops of the same repetition
            for base_name in ("sub_bare", "recv_only"):
                out["loops"][name][f"ratio_to_{base_name}"] = round(statistics.median(
                    [v / b for v, b in zip(values, rates[base_name], strict=True)]), 3)
    for name in ("record", "subscribe"):
        ratio = out["loops"][name]["ratio_to_mcap_bare"]
        out["loops"][name]["goal"] = f">= {GOAL:.0%} of mcap_bare"
        out["loops"][name]["verdict"] = common.verdict(ratio >= GOAL)
    return out


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    repetitions = 1 if args.quick else 5
    sizes = {"small": 20_000 if args.quick else 200_000, "256KiB": 40 if args.quick else 400}
    before_cpu, load_before = common.cpu_times(), common.loadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as tmp:
        for kind, n in sizes.items():
            results[kind] = run_stream(kind, n, repetitions, Path(tmp))
    rows = []
    for kind, result in results.items():
        for name, loop in result["loops"].items():
            raw = [f"{loop[key]:.0%}" if key in loop else ""
                   for key in ("ratio_to_sub_bare", "ratio_to_recv_only")]
            rows.append([f"{kind} {name}", loop["messages_per_s"], loop["mb_per_s"],
                         f"{loop['ratio_to_mcap_bare']:.0%}",
                         f"{loop['ratio_to_foxglove_bare']:.0%}", *raw,
                         loop.get("verdict", "")])
    common.print_table(["stream / loop", "msg/s", "MB/s", "vs mcap", "vs foxglove",
                        "vs sub_bare", "vs recv_only", "goal"], rows)
    import foxglove
    import mcap

    platform = {**common.platform_block(), "mcap": mcap.__version__,
                "foxglove_sdk": getattr(foxglove, "__version__", "0.30"),
                "pyzmq": zmq.__version__}
    path = common.write_json("recorder_throughput", {
        "quick": args.quick,
        "platform": platform,
        "system_during_run": {
            "loadavg_before": load_before, "loadavg_after": common.loadavg(),
            "cpu_busy_fraction_per_cpu": common.cpu_busy_fractions(before_cpu,
                                                                   common.cpu_times())},
        "conditions": {
            "repetitions": repetitions,
            "order": "per repetition and stream, loops rotated: " + ", ".join(LOOPS),
            "files": "a temporary folder on the local disk, each file deleted after its loop; "
                     "no compression, CRCs on, 1 MiB chunks (the recorder also closes a "
                     "chunk open 1 s)",
            "timing": "perf_counter from the first message to the file finished "
                      "(subscribe, sub_bare: from telling the publisher to go)",
            "publisher": "a spawn child, PUB sndhwm 0 bound on tcp://127.0.0.1, frames "
                         "encoded beforehand and sent frame by frame with int flags as "
                         "flightai.client.Client publishes (the 256 KiB array zero-copy); "
                         "the SUB sockets rcvhwm 0, received frame by frame (Frame.more)",
            "recorder_options": "defaults (views on, 1 MiB or 1 s chunks, no compression) "
                                "but queue_size = the stream's length: the stream arrives "
                                "as one burst, which the default queue would drop from "
                                "(subscribe does not use the queue: its SUB socket, "
                                "rcvhwm 0, holds the burst)",
            "check": "every loop wrote every message (counts and drops checked); the first "
                     "record and subscribe file of a stream reopened with CRCs validated",
        },
        "results": results,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
