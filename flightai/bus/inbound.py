"""Sensor messages and ticks in: decoded and checked off the frame thread, delivered per frame.

The frame thread owns the sensors (PULL) socket: it drains it at every frame
and, on the external clock, while it waits for the next tick. Each message is
decoded with :func:`~flightai.bus.wire.decode`, checked against the mission's
input signals and the topic's sequence numbers, and either counted as a
reject by reason or buffered. Ticks (topic ``tick``) advance the external
clock after the samples sent before them are buffered, so a lockstep sender
that sends its samples then its tick always has them seen at that tick's
frame. :meth:`BusInput.poll` hands over the samples measured at or before the
frame's instant; later ones wait for their frame.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import zmq

from flightai.bus.wire import Message, Reason, WireError, decode
from flightai.config.schema import SignalSpec
from flightai.sched.io import Sample
from flightai.timebase import NS_PER_MS

TICK_TOPIC = "tick"
_DRAIN_LIMIT = 10_000  # messages per drain: bounds one frame's work under a flood


class InboundChecks:
    """Per-topic checks a decoded sensor message must pass (receiver thread only).

    Args:
        inputs: the mission's input signals by name.
        max_message_bytes: cap applied before decoding.
    """

    def __init__(self, inputs: Mapping[str, SignalSpec], max_message_bytes: int) -> None:
        self._inputs = inputs
        self._max_bytes = max_message_bytes
        self._last_seq: dict[str, int] = {}
        self.rejects: Counter[str] = Counter()
        self.received = 0
        self.gaps = 0

    def check(self, frames: list[bytes | memoryview]) -> Message | None:
        """Decode and check; count and return None when refused."""
        self.received += 1
        try:
            message = decode(frames, self._max_bytes)
            self._check_message(message)
        except WireError as exc:
            self.rejects[exc.reason.value] += 1
            return None
        except Exception:  # a decoder gap must cost one message, never the receiver thread
            self.rejects[Reason.MALFORMED.value] += 1
            return None
        return message

    def _check_message(self, message: Message) -> None:
        if message.topic == TICK_TOPIC:
            if message.arrays:
                raise WireError(Reason.BAD_FRAME_COUNT, "a tick carries no arrays")
        else:
            spec = self._inputs.get(message.topic)
            if spec is None:
                raise WireError(Reason.UNKNOWN_TOPIC, message.topic)
            if len(message.arrays) != 1:
                raise WireError(Reason.BAD_FRAME_COUNT, "a sensor message carries one array")
            array = message.arrays[0][1]
            if array.dtype != np.dtype(spec.dtype):
                raise WireError(Reason.BAD_DTYPE, f"{message.topic}: {array.dtype}")
            if array.shape != spec.shape:
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
    (~10 us each) but removes a thread hand-off from every sample and tick.

    Args:
        socket: the bound sensors (PULL) socket; used only by the frame thread.
        checks: decoding and per-topic checks.
        authorise: returns whether a received message's peer is allowed.
        on_tick: called with each tick's instant, after the samples before it.
        max_lead_ns: samples stamped further than this past the frame being
            polled are refused as ``future_timestamp`` instead of buffered.
        max_buffered_bytes: samples read but not yet visible may hold at most this
            many bytes of array data; past it a sample is refused as ``overflow``.
    """

    def __init__(self, socket: zmq.Socket[bytes], checks: InboundChecks,
                 authorise: Callable[[zmq.Frame], bool], on_tick: Callable[[int], None],
                 max_lead_ns: int, max_buffered_bytes: int) -> None:
        self._socket = socket
        self._checks = checks
        self._authorise = authorise
        self._on_tick = on_tick
        self._max_lead_ns = max_lead_ns
        self._arrived: list[Sample] = []
        self._pending: list[tuple[int, int, Sample]] = []
        self._order = itertools.count()
        self._max_buffered = max_buffered_bytes
        self._buffered = 0
        self.future_rejects = 0

    def pump(self, max_wait_ns: int) -> None:
        """Wait up to ``max_wait_ns`` for messages, then take every one waiting."""
        if self._socket.poll(max(0, max_wait_ns // NS_PER_MS)):
            self._drain()

    def _drain(self) -> None:
        for _ in range(_DRAIN_LIMIT):
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if not self._authorise(frames[0]):
                self._checks.received += 1
                self._checks.rejects[Reason.UNAUTHORISED.value] += 1
                continue
            message = self._checks.check([f.buffer for f in frames])
            if message is None:
                continue
            if message.topic == TICK_TOPIC:
                self._on_tick(message.t_ns)
                continue
            value = message.arrays[0][1]
            if self._buffered + value.nbytes > self._max_buffered:
                self._checks.rejects[Reason.OVERFLOW.value] += 1
                continue
            self._buffered += value.nbytes
            self._arrived.append(Sample(message.topic, message.t_ns, value))

    def poll(self, t_ns: int) -> list[Sample]:
        """Samples measured at or before ``t_ns``, in arrival order within one instant."""
        self._drain()
        for sample in self._arrived:
            if sample.t_ns > t_ns + self._max_lead_ns:
                self.future_rejects += 1
                self._buffered -= sample.value.nbytes
                continue
            heapq.heappush(self._pending, (sample.t_ns, next(self._order), sample))
        self._arrived.clear()
        ready = []
        while self._pending and self._pending[0][0] <= t_ns:
            sample = heapq.heappop(self._pending)[2]
            self._buffered -= sample.value.nbytes
            ready.append(sample)
        return ready
