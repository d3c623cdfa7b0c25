"""Sensor messages and ticks in: read, decoded and checked on the frame thread, delivered per frame.

The frame thread owns the sensors (PULL) socket: it drains it at every frame
and, on the external clock, while it waits for the next tick. Each message is
decoded and checked against the mission's input signals and the topic's
sequence numbers, and either counted as a reject by reason or buffered. Ticks
(topic ``tick``) advance the external clock after the samples sent before them
are buffered, so a lockstep sender that sends its samples then its tick always
has them seen at that tick's frame; a drain stops right after a tick that
advanced the clock, so the frame it releases runs before anything sent later is
read (ZeroMQ's high-water mark, not an unbounded buffer, holds the rest).
:meth:`BusInput.poll` hands over the samples measured at or before the frame's
instant; later ones wait for their frame.

Speed. A sender repeats the same header for one topic but for ``seq`` and
``t_ns``. :class:`InboundChecks` keeps, per input topic, the header bytes
around those two integers of layouts it has already fully decoded and accepted;
a message whose header is such a layout byte for byte, with the two integers in
any msgpack integer encoding, is taken without building the header map. This
is the same decision :func:`~flightai.bus.wire.decode` and the checks would
reach on those bytes; anything else goes through them.
"""

from __future__ import annotations

import bisect
import math
import operator
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq

from flightai.bus.sockets import COPY_THRESHOLD
from flightai.bus.wire import (
    INT64_MAX,
    INT_FORMATS,
    MAX_ARRAYS,
    MAX_HEADER_BYTES,
    MAX_TOPIC_BYTES,
    T_NS_KEY,
    UINT_FORMATS,
    WIRE_DTYPES,
    Message,
    Reason,
    WireError,
    arrays_part,
    decode,
    header_prefix,
    read_int64,
    read_uint,
)
from flightai.config.schema import SignalSpec
from flightai.sched.io import Sample
from flightai.timebase import NS_PER_MS

TICK_TOPIC = "tick"
_DRAIN_LIMIT = 10_000  # messages per drain: bounds one frame's work under a flood
_LAYOUTS_PER_TOPIC = 8  # header layouts remembered per topic (distinct array names)
_T_NS = operator.attrgetter("t_ns")
_NOBLOCK = int(zmq.NOBLOCK)

#: (topic, seq, t_ns, array name, array) of an accepted message; a tick has no array.
Accepted = tuple[str, int, int, str, "npt.NDArray[Any] | None"]


class _Layout:
    """What every accepted header of one topic shares: the bytes around ``seq`` and ``t_ns``."""

    __slots__ = (
        "bounded",
        "copy",
        "dtype",
        "frames",
        "nbytes",
        "prefix",
        "reshape",
        "seq_at",
        "shape",
        "suffixes",
        "topic",
    )

    def __init__(self, topic: str, dtype: np.dtype[Any] | None, shape: tuple[int, ...]) -> None:
        self.topic = topic
        self.prefix = header_prefix(topic)
        self.seq_at = len(self.prefix)
        #: header bytes after ``t_ns`` -> array name, for layouts accepted before
        self.suffixes: dict[bytes, str] = {}
        self.frames = 2 if dtype is None else 3
        self.dtype = dtype
        self.shape = shape
        self.nbytes = 0 if dtype is None else math.prod(shape) * dtype.itemsize
        self.reshape = len(shape) != 1
        #: whether arrays are copied out of their frame (small) or viewed in place (large)
        self.copy = self.nbytes < COPY_THRESHOLD
        #: whether every header of this layout is within the size caps (checked when learnt)
        self.bounded = True


class InboundChecks:
    """Per-topic checks a decoded sensor message must pass (frame thread only).

    Args:
        inputs: the mission's input signals by name.
        max_message_bytes: cap applied before decoding.
        layouts: recognise the header layouts already accepted, byte for byte (False:
            every message goes through :func:`~flightai.bus.wire.decode`; same results).
    """

    def __init__(self, inputs: Mapping[str, SignalSpec], max_message_bytes: int, *,
                 layouts: bool = True) -> None:
        self._inputs = inputs
        self._dtypes = {name: np.dtype(spec.dtype) for name, spec in inputs.items()}
        self._max_bytes = max_message_bytes
        self._last_seq: dict[str, int] = {}
        self.rejects: Counter[str] = Counter()
        self.received = 0
        self.gaps = 0
        self._layouts: dict[bytes, _Layout] = {}
        if not layouts:
            return
        for name, spec in inputs.items():
            wire = WIRE_DTYPES.get(spec.dtype)
            topic = name.encode()
            if wire is not None and name != TICK_TOPIC and len(topic) <= MAX_TOPIC_BYTES:
                self._layouts[topic] = _Layout(name, wire, spec.shape)
        tick = _Layout(TICK_TOPIC, None, ())
        tick.suffixes[arrays_part([])] = ""
        tick.bounded = len(tick.prefix) + 9 + len(T_NS_KEY) + 9 + len(arrays_part([])) + len(
            TICK_TOPIC) <= min(MAX_HEADER_BYTES, max_message_bytes)
        self._layouts[TICK_TOPIC.encode()] = tick

    def check(self, frames: Sequence[bytes | memoryview | zmq.Frame]) -> Message | None:
        """Decode and check; count and return None when refused."""
        accepted = self.accept(frames)
        if accepted is None:
            return None
        if isinstance(accepted, Message):
            return accepted
        topic, seq, t_ns, name, value = accepted
        return Message(topic, seq, t_ns, () if value is None else ((name, value),))

    def accept(self, frames: Sequence[bytes | memoryview | zmq.Frame]
               ) -> Accepted | Message | None:
        """Like :meth:`check`; a header of a known layout gives a tuple, not a Message."""
        self.received += 1
        if not 2 <= len(frames) <= 3 or type(frames[0]) is not bytes:
            return self._slow(frames)
        layout = self._layouts.get(frames[0])
        header = frames[1]
        if (layout is None or len(frames) != layout.frames or type(header) is not bytes
                or not header.startswith(layout.prefix)):
            return self._slow(frames)
        at = layout.seq_at
        try:  # seq: any unsigned msgpack integer; t_ns: any integer in int64 range
            b = header[at]
            if b < 0x80:
                seq, at = b, at + 1
            else:
                fmt, size = UINT_FORMATS[b]
                seq, at = fmt.unpack_from(header, at + 1)[0], at + size
            if not header.startswith(T_NS_KEY, at):
                return self._slow(frames)
            at += len(T_NS_KEY)
            b = header[at]
            if b < 0x80 or b >= 0xE0:
                t_ns, at = (b if b < 0x80 else b - 0x100), at + 1
            else:
                fmt, size = INT_FORMATS[b]
                t_ns, at = fmt.unpack_from(header, at + 1)[0], at + size
                if t_ns > INT64_MAX:
                    return self._slow(frames)
        except (IndexError, KeyError, struct.error):
            return self._slow(frames)
        name = layout.suffixes.get(header[at:])
        if name is None or (layout.frames == 3 and len(frames[2]) != layout.nbytes):
            return self._slow(frames)
        if not layout.bounded and (len(header) > MAX_HEADER_BYTES or len(frames[0])
                                   + len(header) + layout.nbytes > self._max_bytes):
            return self._slow(frames)
        topic = layout.topic
        last = self._last_seq.get(topic)
        if last is not None:
            if seq <= last:
                reason = Reason.DUPLICATE if seq == last else Reason.OUT_OF_ORDER
                self.rejects[reason.value] += 1
                return None
            self.gaps += seq - last - 1
        self._last_seq[topic] = seq
        if layout.dtype is None:
            return topic, seq, t_ns, name, None
        data = frames[2]
        if layout.copy and isinstance(data, zmq.Frame):
            data = data.bytes  # a small copy costs less than making a view read-only
        value = np.frombuffer(data, layout.dtype)  # type: ignore[arg-type]
        if layout.reshape:
            value = value.reshape(layout.shape)
        if type(data) is not bytes:
            value.flags.writeable = False
        return topic, seq, t_ns, name, value

    def _slow(self, frames: Sequence[bytes | memoryview | zmq.Frame]) -> Message | None:
        """Decode and check with :func:`~flightai.bus.wire.decode` (every check, in order)."""
        try:
            message = decode([f.buffer if isinstance(f, zmq.Frame) else f for f in frames],
                             self._max_bytes)
            self._check_message(message)
        except WireError as exc:
            self.rejects[exc.reason.value] += 1
            return None
        except Exception:  # a decoder gap must cost one message, never the frame loop
            self.rejects[Reason.MALFORMED.value] += 1
            return None
        self._learn(frames, message)
        return message

    def _learn(self, frames: Sequence[Any], message: Message) -> None:
        """Remember the header layout of an accepted sample (bytes after ``t_ns``)."""
        layout = self._layouts.get(frames[0]) if type(frames[0]) is bytes else None
        header = frames[1]
        if (layout is None or layout.dtype is None or type(header) is not bytes
                or len(layout.suffixes) >= _LAYOUTS_PER_TOPIC or message.fields
                or not header.startswith(layout.prefix)):
            return
        seq_at = read_uint(header, len(layout.prefix))
        if seq_at is None or not header.startswith(T_NS_KEY, seq_at[1]):
            return
        t_at = read_int64(header, seq_at[1] + len(T_NS_KEY))
        if t_at is not None and (seq_at[0], t_at[0]) == (message.seq, message.t_ns):
            suffix = header[t_at[1]:]
            layout.suffixes[suffix] = message.arrays[0][0]
            # the longest header of this layout (9-byte integers) needs no size check
            longest = layout.seq_at + 9 + len(T_NS_KEY) + 9 + len(suffix)
            layout.bounded = layout.bounded and longest <= MAX_HEADER_BYTES and (
                len(frames[0]) + longest + layout.nbytes <= self._max_bytes)

    def _check_message(self, message: Message) -> None:
        if message.topic == TICK_TOPIC:
            if message.arrays:
                raise WireError(Reason.BAD_FRAME_COUNT, "a tick carries no arrays")
        else:
            dtype = self._dtypes.get(message.topic)
            if dtype is None:
                raise WireError(Reason.UNKNOWN_TOPIC, message.topic)
            if len(message.arrays) != 1:
                raise WireError(Reason.BAD_FRAME_COUNT, "a sensor message carries one array")
            array = message.arrays[0][1]
            if array.dtype != dtype:
                raise WireError(Reason.BAD_DTYPE, f"{message.topic}: {array.dtype}")
            if array.shape != self._inputs[message.topic].shape:
                raise WireError(Reason.BAD_SHAPE, f"{message.topic}: {list(array.shape)}")
        last = self._last_seq.get(message.topic)
        if last is not None:
            if message.seq == last:
                raise WireError(Reason.DUPLICATE, f"{message.topic} seq {message.seq}")
            if message.seq < last:
                raise WireError(Reason.OUT_OF_ORDER, f"{message.topic} seq {message.seq} < {last}")
            self.gaps += message.seq - last - 1
        self._last_seq[message.topic] = message.seq


class BusInput:
    """The sensors socket, read on the frame thread: an :class:`InputSource` and a tick pump.

    Reading on the frame thread costs the frame the decode of its own messages
    (a few us each) but removes a thread hand-off from every sample and tick.

    Args:
        socket: the bound sensors (PULL) socket; used only by the frame thread.
        checks: decoding and per-topic checks.
        authorise: returns whether a received message's peer is allowed, or None
            when every peer is (no CURVE: frames are then received as bytes).
        on_tick: called with each tick's instant, after the samples before it;
            returns True when the tick advanced the clock (the drain stops there).
        max_lead_ns: samples stamped further than this past the frame being
            polled are refused as ``future_timestamp`` instead of buffered.
        max_buffered_bytes: samples read but not yet visible may hold at most this
            many bytes of array data; past it a sample is refused as ``overflow``.
    """

    def __init__(self, socket: zmq.Socket[bytes], checks: InboundChecks,
                 authorise: Callable[[zmq.Frame], bool] | None,
                 on_tick: Callable[[int], bool], max_lead_ns: int,
                 max_buffered_bytes: int) -> None:
        self._socket = socket
        self._checks = checks
        self._authorise = authorise
        self._on_tick = on_tick
        self._max_lead_ns = max_lead_ns
        self._arrived: list[Sample] = []
        self._arrived_nbytes: list[int] = []  # value.nbytes of each arrived sample
        self._arrived_max_t: int | None = None
        self._arrived_sorted = True
        self._pending: list[Sample] = []  # sorted by (t_ns, arrival)
        self._pending_nbytes: list[int] = []  # value.nbytes of each pending sample
        self._max_buffered = max_buffered_bytes
        self._buffered = 0
        self._poll_items = [(socket, zmq.POLLIN)]
        self.future_rejects = 0

    def pump(self, max_wait_ns: int) -> None:
        """Wait up to ``max_wait_ns`` for messages, then take those waiting (up to a tick)."""
        if zmq.zmq_poll(self._poll_items, max(0, max_wait_ns // NS_PER_MS)):
            self._drain(polled=True)

    def _drain(self, polled: bool = False) -> None:
        """Read messages until none waits, a tick advances the clock, or the drain limit.

        Unless ``polled`` (something is known to wait), a zero-timeout poll comes first:
        on an empty socket it costs a quarter of the ``zmq.Again`` a receive would raise.
        """
        if not polled and not zmq.zmq_poll(self._poll_items, 0):
            return
        checks, authorise, on_tick = self._checks, self._authorise, self._on_tick
        recv, accept = self._socket.recv, checks.accept
        arrived, arrived_nbytes = self._arrived.append, self._arrived_nbytes.append
        buffered, max_buffered = self._buffered, self._max_buffered
        max_t, in_order = self._arrived_max_t, self._arrived_sorted
        try:
            for _ in range(_DRAIN_LIMIT):
                # Frames, not bytes: Frame.more is cheaper than getsockopt(RCVMORE), arrays
                # are views of them, and a frame too long for its role is never copied.
                try:
                    frame = recv(_NOBLOCK, False)
                except zmq.Again:
                    return
                first = frame
                parts: list[Any] = [frame.bytes if len(frame) <= MAX_TOPIC_BYTES else frame]
                if frame.more:
                    frame = recv(_NOBLOCK, False)
                    parts.append(frame.bytes if len(frame) <= MAX_HEADER_BYTES else frame)
                    while frame.more:
                        frame = recv(_NOBLOCK, False)
                        if len(parts) <= MAX_ARRAYS + 2:  # beyond, only counted (frame count)
                            parts.append(frame)
                if authorise is not None and not authorise(first):
                    checks.received += 1
                    checks.rejects[Reason.UNAUTHORISED.value] += 1
                    continue
                accepted = accept(parts)
                if accepted is None:
                    continue
                if type(accepted) is tuple:
                    topic, _, t_ns, _, value = accepted
                else:
                    assert isinstance(accepted, Message)
                    topic, t_ns = accepted.topic, accepted.t_ns
                    value = accepted.arrays[0][1] if accepted.arrays else None
                if value is None:  # a tick (a sample always has its array)
                    if on_tick(t_ns):
                        return
                    continue
                nbytes = value.nbytes
                if buffered + nbytes > max_buffered:
                    checks.rejects[Reason.OVERFLOW.value] += 1
                    continue
                buffered += nbytes
                if max_t is None or t_ns >= max_t:
                    max_t = t_ns
                else:
                    in_order = False
                arrived(Sample(topic, t_ns, value, immutable=True))
                arrived_nbytes(nbytes)
        finally:
            self._buffered, self._arrived_max_t, self._arrived_sorted = buffered, max_t, in_order

    def poll(self, t_ns: int) -> list[Sample]:
        """Samples measured at or before ``t_ns``, in (``t_ns``, arrival) order."""
        self._drain()
        if self._arrived:
            self._take_arrived(t_ns)
        pending = self._pending
        if not pending or pending[0].t_ns > t_ns:
            return []
        if pending[-1].t_ns <= t_ns:
            self._pending, self._pending_nbytes = [], []
            self._buffered = 0  # nothing else is buffered after _take_arrived
            return pending
        cut = bisect.bisect_right(pending, t_ns, key=_T_NS)
        ready = pending[:cut]
        del pending[:cut]
        self._buffered -= sum(self._pending_nbytes[:cut])
        del self._pending_nbytes[:cut]
        return ready

    def _take_arrived(self, t_ns: int) -> None:
        """Move the samples read since the last poll to the pending list (future ones refused)."""
        arrived, nbytes = self._arrived, self._arrived_nbytes
        assert self._arrived_max_t is not None
        if self._arrived_max_t > t_ns + self._max_lead_ns:
            kept, kept_nbytes = [], []
            for sample, size in zip(arrived, nbytes, strict=True):
                if sample.t_ns > t_ns + self._max_lead_ns:
                    self.future_rejects += 1
                    self._buffered -= size
                else:
                    kept.append(sample)
                    kept_nbytes.append(size)
            arrived, nbytes = kept, kept_nbytes
        pending = self._pending
        in_order = self._arrived_sorted and (
            not pending or not arrived or pending[-1].t_ns <= arrived[0].t_ns)
        pending.extend(arrived)
        if in_order:
            self._pending_nbytes.extend(nbytes)
        else:
            pending.sort(key=_T_NS)  # stable: arrival order kept within one instant
            self._pending_nbytes = [sample.value.nbytes for sample in pending]
        self._arrived.clear()
        self._arrived_nbytes.clear()
        self._arrived_max_t = None
        self._arrived_sorted = True
