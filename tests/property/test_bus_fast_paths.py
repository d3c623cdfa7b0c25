"""Property tests of the bus fast paths: each must do exactly what the reference code does.

* ``Client.publish``/``tick`` and ``BusSink`` pack headers from pre-packed parts: the
  bytes on the wire equal :func:`~flightai.bus.wire.encode`'s;
* ``InboundChecks`` takes headers of a layout it has already accepted without decoding
  them: for any stream (valid messages, integers re-encoded in every msgpack width,
  byte-level mutations, wrong frames) it returns and counts exactly what the
  decode-everything path (``layouts=False``) does;
* ``BusInput`` hands samples over in (``t_ns``, arrival) order and refuses future and
  overflowing ones as a reference buffer (the heap it replaced) does, a drain stopping
  after each tick that advances the clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import struct
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flightai.bus.inbound import TICK_TOPIC, BusInput, InboundChecks
from flightai.bus.outbound import BusSink
from flightai.bus.wire import (
    INT64_MAX,
    INT64_MIN,
    T_NS_KEY,
    UINT64_MAX,
    WIRE_DTYPES,
    Message,
    decode,
    encode,
    header_prefix,
)
from flightai.client import Client
from flightai.config.schema import SignalSpec
from flightai.sched.health import Health
from flightai.sched.io import Publication

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOPIC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"

topics = st.text(TOPIC_CHARS, min_size=1, max_size=30).filter(lambda t: t != TICK_TOPIC)
seqs = st.integers(0, UINT64_MAX)
times = st.integers(INT64_MIN, INT64_MAX)


@st.composite
def arrays(draw: st.DrawFn) -> Any:
    """Any wire dtype, byte order and layout, 0-d included, or a numpy scalar."""
    name = draw(st.sampled_from(sorted(WIRE_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    array = np.arange(math.prod(shape)).astype(name).reshape(shape)
    if draw(st.booleans()):
        array = array.astype(array.dtype.newbyteorder(">"))
    if array.ndim >= 2 and draw(st.booleans()):
        array = array.T
    if array.ndim == 0 and draw(st.booleans()):
        return array[()]  # a numpy scalar, not an array
    return array


def _frames(message: list[Any]) -> list[bytes]:
    return [f.tobytes() if isinstance(f, np.ndarray) else bytes(f) for f in message]


class Recorder:
    """Stands for a socket: keeps each message sent frame by frame, as bytes."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []
        self._message: list[bytes] = []

    def send(self, frame: Any, flags: int = 0, copy: bool = True) -> None:
        self._message.append(frame.tobytes() if isinstance(frame, np.ndarray) else bytes(frame))
        if not flags & zmq.SNDMORE:
            self.sent.append(self._message)
            self._message = []


# -- senders: the bytes equal encode()'s ---------------------------------------------------------


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["a", "imu.accel", "b" * 30]), arrays(),
                          st.none() | seqs, times), min_size=1, max_size=12),
       st.lists(times, max_size=3))
def test_client_sends_what_encode_builds(samples: list[tuple[str, Any, int | None, int]],
                                         ticks: list[int]) -> None:
    client = Client()
    recorder = Recorder()
    client._sockets["sensors"] = recorder  # type: ignore[assignment]
    try:
        expected, counters = [], Counter[str]()
        for topic, value, seq, t_ns in samples:
            used = client.publish(topic, t_ns, value, seq=seq)
            if seq is None:
                assert used == counters[topic]
                counters[topic] += 1
            expected.append(_frames(encode(topic, used, t_ns, [("value", value)])))
        for k, t_ns in enumerate(ticks):
            client.tick(t_ns)
            expected.append(_frames(encode(TICK_TOPIC, k, t_ns)))
        assert recorder.sent == expected
    finally:
        client._sockets.clear()
        client.close()


outputs = st.lists(st.tuples(st.text(TOPIC_CHARS, max_size=8), arrays()),
                   max_size=3).map(lambda o: tuple((n, np.asarray(v)) for n, v in o))


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["nav", "guid"]), outputs, times, times,
                          st.sampled_from(["ok", "held", "fallback"])), max_size=8),
       st.lists(st.integers(0, 10**12), max_size=4))
def test_sink_publishes_what_encode_builds(
        publications: list[tuple[str, Any, int, int, str]], frames: list[int]) -> None:
    recorder = Recorder()
    sink = BusSink(recorder, 10**15, dict)  # type: ignore[arg-type]
    expected, counters = [], Counter[str]()
    for task, values, t_ns, t_release, status in publications:
        sink.publish(Publication(t_ns, task, t_release, values, status))
        fields = {"task": task, "t_release_ns": t_release, "status": status}
        expected.append(_frames(encode(f"out.{task}", counters[task], t_ns, values, fields)))
        counters[task] += 1
    for k, t_ns in enumerate(frames):
        sink.frame_done(t_ns * 7 + 1, Health())  # never a health instant
        expected.append(_frames(encode("frame", k, t_ns * 7 + 1)))
    assert recorder.sent == expected


def test_outputs_of_received_values_take_the_prepacked_path(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A task's output copied from a received array (the wire's dtype instance) and one of
    an equal dtype instance made otherwise both go out on the pre-packed layout: ``encode``
    runs once, to check the layout, whatever the first value was."""
    import flightai.bus.outbound as outbound

    calls = Counter[str]()
    real_encode = outbound.encode

    def counting_encode(topic: str, *args: Any, **kwargs: Any) -> list[Any]:
        calls[topic] += 1
        return real_encode(topic, *args, **kwargs)

    monkeypatch.setattr(outbound, "encode", counting_encode)
    received = decode(_frames(encode("imu", 0, 0, [("value", np.ones(3, np.float32))])), 1 << 20)
    values = [np.zeros(3, np.float32), received.arrays[0][1].copy(),
              np.zeros(3, np.dtype("float32").newbyteorder("<"))]
    recorder = Recorder()
    sink = BusSink(recorder, 10**15, dict)  # type: ignore[arg-type]
    for k, value in enumerate(values * 2):
        sink.publish(Publication(k, "nav", k, (("y", value),), "ok"))
    assert calls == {"out.nav": 1}
    assert recorder.sent == [_frames(real_encode("out.nav", k, k, [("y", value)],
                                                 {"task": "nav", "t_release_ns": k,
                                                  "status": "ok"}))
                             for k, value in enumerate(values * 2)]


# -- InboundChecks: the layout path decides as decode() does -----------------------------------

INPUTS = {
    "imu": SignalSpec("imu", "float32", (3,), input=True),
    "alt": SignalSpec("alt", "float64", (), input=True),
    "cam": SignalSpec("cam", "uint8", (2, 4), input=True),
}
_WIDTHS = {"u8": (0xCC, ">B"), "u16": (0xCD, ">H"), "u32": (0xCE, ">I"), "u64": (0xCF, ">Q"),
           "i8": (0xD0, ">b"), "i16": (0xD1, ">h"), "i32": (0xD2, ">i"), "i64": (0xD3, ">q")}


def packed_int(value: int, width: str) -> bytes:
    """``value`` in a given msgpack integer encoding, or msgpack's own when it does not fit."""
    if width == "fix" and -32 <= value <= 127:
        return msgpack.packb(value)
    if width in _WIDTHS:
        marker, fmt = _WIDTHS[width]
        try:
            return bytes((marker,)) + struct.pack(fmt, value)
        except struct.error:
            pass
    return msgpack.packb(value)


widths = st.sampled_from(["fix", *_WIDTHS, "default"])


@st.composite
def inbound_messages(draw: st.DrawFn) -> list[Any]:
    """A sensor-socket message: mostly valid, often with odd integer encodings or damage."""
    topic = draw(st.sampled_from([*INPUTS, TICK_TOPIC]))
    edges = [0, 127, 128, 255, 256, 2**16, 2**32, INT64_MAX, INT64_MAX + 1, UINT64_MAX]
    seq = draw(st.integers(0, 6) | st.integers(0, UINT64_MAX) | st.integers(-3, -1)
               | st.sampled_from(edges))
    t_ns = draw(st.integers(-300, 300) | st.integers(INT64_MIN, UINT64_MAX)
                | st.sampled_from([*edges, -1, -32, -33, -128, -129, INT64_MIN])
                | st.sampled_from(edges).map(lambda e: e - 1))
    arrays_: list[tuple[str, Any]] = []
    if topic != TICK_TOPIC:
        spec = INPUTS[topic]
        name = draw(st.sampled_from(["value", "v", ""]) | st.text(max_size=3))
        arrays_ = [(name, np.arange(math.prod(spec.shape)).astype(spec.dtype)
                    .reshape(spec.shape))]
    frames: list[Any] = _frames(encode(topic, max(seq, 0), 0, arrays_))
    # rebuild the header with the integers in chosen encodings (any msgpack width is valid)
    prefix = header_prefix(topic)
    suffix = msgpack.packb("arrays") + msgpack.packb(
        [{"name": n, "dtype": v.dtype.name, "shape": list(v.shape)} for n, v in arrays_])
    frames[1] = (prefix + packed_int(seq, draw(widths)) + T_NS_KEY
                 + packed_int(t_ns, draw(widths)) + suffix)
    damage = draw(st.sampled_from(["none"] * 6 + ["byte", "cut", "extend", "frame_length",
                                                  "frame_count", "as_frame"]))
    header = frames[1]
    if damage == "byte":
        at = draw(st.integers(0, len(header) - 1))
        frames[1] = header[:at] + bytes((draw(st.integers(0, 255)),)) + header[at + 1:]
    elif damage == "cut":
        frames[1] = header[:draw(st.integers(0, len(header) - 1))]
    elif damage == "extend":
        frames[1] = header + draw(st.binary(min_size=1, max_size=4))
    elif damage == "frame_length" and len(frames) == 3:
        frames[2] = frames[2][:-1] if frames[2] and draw(st.booleans()) else frames[2] + b"\0"
    elif damage == "frame_count":
        frames = frames[:-1] if draw(st.booleans()) else [*frames, b""]
    elif damage == "as_frame":  # as BusInput hands them over: arrays as zmq.Frame
        frames = [*frames[:2], *[zmq.Frame(f) for f in frames[2:]]]
    return frames


def _same(a: Message | None, b: Message | None) -> bool:
    if a is None or b is None:
        return a is b
    return ((a.topic, a.seq, a.t_ns, dict(a.fields)) == (b.topic, b.seq, b.t_ns, dict(b.fields))
            and len(a.arrays) == len(b.arrays)
            and all(na == nb and va.dtype == vb.dtype and va.shape == vb.shape
                    and va.tobytes() == vb.tobytes() and not va.flags.writeable
                    for (na, va), (nb, vb) in zip(a.arrays, b.arrays, strict=True)))


@settings(PROPERTY, max_examples=300)
@given(st.lists(inbound_messages(), min_size=1, max_size=60), st.sampled_from([1024, 1 << 20]))
def test_known_layouts_are_decided_as_decode_decides(stream: list[list[Any]],
                                                     max_bytes: int) -> None:
    fast = InboundChecks(INPUTS, max_bytes)
    reference = InboundChecks(INPUTS, max_bytes, layouts=False)
    for frames in stream:
        got, want = fast.check(frames), reference.check(frames)
        assert _same(got, want), (frames, got, want)
        assert (fast.received, fast.rejects, fast.gaps) == (
            reference.received, reference.rejects, reference.gaps)


def test_a_repeated_layout_takes_the_fast_path() -> None:
    checks = InboundChecks(INPUTS, 1 << 20)
    value = np.zeros(3, np.float32)
    for seq in range(3):
        assert checks.check(_frames(encode("imu", seq, seq, [("value", value)]))) is not None
    accepted = checks.accept(_frames(encode("imu", 3, 3, [("value", value)])))
    assert isinstance(accepted, tuple)  # no Message built: the layout was recognised
    assert accepted[:4] == ("imu", 3, 3, "value")


# -- BusInput: ordering, future and overflow refusals against the heap it replaced --------------

LEAD_NS = 5


class ReferenceInput:
    """The buffer BusInput had before: arrival list, then a heap keyed (t_ns, arrival)."""

    def __init__(self, max_buffered: int) -> None:
        self.queue: deque[tuple[str, int, bytes]] = deque()  # what the socket holds
        self.now: int | None = None
        self.arrived: list[tuple[str, int, bytes]] = []
        self.pending: list[tuple[int, int, tuple[str, int, bytes]]] = []
        self.order = itertools.count()
        self.buffered = 0
        self.max_buffered = max_buffered
        self.future = self.overflow = 0

    def drain(self) -> None:
        while self.queue:
            topic, t_ns, data = self.queue.popleft()
            if topic == TICK_TOPIC:
                advanced = self.now is None or t_ns > self.now
                self.now = t_ns if advanced else self.now
                if advanced:
                    return
                continue
            if self.buffered + len(data) > self.max_buffered:
                self.overflow += 1
                continue
            self.buffered += len(data)
            self.arrived.append((topic, t_ns, data))

    def poll(self, t_ns: int) -> list[tuple[str, int, bytes]]:
        self.drain()
        for sample in self.arrived:
            if sample[1] > t_ns + LEAD_NS:
                self.future += 1
                self.buffered -= len(sample[2])
                continue
            heapq.heappush(self.pending, (sample[1], next(self.order), sample))
        self.arrived.clear()
        ready = []
        while self.pending and self.pending[0][0] <= t_ns:
            sample = heapq.heappop(self.pending)[2]
            self.buffered -= len(sample[2])
            ready.append(sample)
        return ready


@pytest.fixture(scope="module")
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


_endpoints = itertools.count()
instants = st.integers(-5, 20)  # often equal, some more than LEAD_NS past a poll


@st.composite
def lockstep(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A few frames of a lockstep sender: samples around the instant, its tick, then polls."""
    ops: list[tuple[Any, ...]] = []
    for k in range(draw(st.integers(1, 6))):
        for _ in range(draw(st.integers(0, 4))):
            ops.append(("sample", draw(st.sampled_from(["imu", "cam"])),
                        k + draw(st.integers(-3, 7))))
        ops.append(("tick", k))
        ops += [("poll", k)] * draw(st.integers(0, 2))
    return ops


operations = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.sampled_from(["imu", "cam"]), instants),
        st.tuples(st.just("tick"), instants),
        st.tuples(st.just("poll"), instants),
        st.tuples(st.just("pump")),
    ), max_size=80) | lockstep() | st.lists(lockstep(), max_size=4).map(
        lambda steps: [op for step in steps for op in step])


@settings(PROPERTY, max_examples=300)
@given(operations, st.sampled_from([1 << 20, 40, 100]))
def test_samples_are_handed_over_as_the_reference_buffer_does(
        context: zmq.Context[zmq.Socket[bytes]], ops: list[tuple[Any, ...]],
        max_buffered: int) -> None:
    endpoint = f"inproc://bus-input-{next(_endpoints)}"
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    pull.rcvhwm = push.sndhwm = 0
    pull.bind(endpoint)
    push.connect(endpoint)
    try:
        clock: list[int] = []

        def on_tick(t_ns: int) -> bool:
            if not clock or t_ns > clock[-1]:
                clock.append(t_ns)
                return True
            return False

        checks = InboundChecks(INPUTS, 1 << 20)
        bus_input = BusInput(pull, checks, None, on_tick, LEAD_NS, max_buffered)
        reference = ReferenceInput(max_buffered)
        seq = Counter[str]()
        for k, op in enumerate(ops):
            if op[0] == "sample":
                spec = INPUTS[op[1]]
                value = np.full(spec.shape, k % 256).astype(spec.dtype)  # tells samples apart
                push.send_multipart(_frames(encode(op[1], seq[op[1]], op[2],
                                                   [("value", value)])))
                seq[op[1]] += 1
                reference.queue.append((op[1], op[2], value.tobytes()))
            elif op[0] == "tick":
                push.send_multipart(_frames(encode(TICK_TOPIC, seq[TICK_TOPIC], op[1])))
                seq[TICK_TOPIC] += 1
                reference.queue.append((TICK_TOPIC, op[1], b""))
            elif op[0] == "pump":
                bus_input.pump(0)
                reference.drain()
            else:
                got = [(s.signal, s.t_ns, s.value.tobytes()) for s in bus_input.poll(op[1])]
                assert got == reference.poll(op[1])
                assert bus_input.future_rejects == reference.future
                assert checks.rejects["overflow"] == reference.overflow
        assert clock == sorted(set(clock))
        assert checks.rejects.keys() <= {"overflow"}
    finally:
        pull.close(linger=0)
        push.close(linger=0)
