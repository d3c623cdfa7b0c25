"""Sensor messages and ticks in: decoded and checked off the frame thread, delivered per frame.

A receiver thread owns the sensors (PULL) socket. Each message is decoded
with :func:`~flightai.bus.wire.decode`, checked against the mission's input
signals and the topic's sequence numbers, and either counted as a reject by
reason or queued. Ticks (topic ``tick``) advance the external clock after the
samples sent before them are queued, so a lockstep sender that sends its
samples then its tick always has them seen at that tick's frame.
:meth:`BusInput.poll` runs on the frame thread and hands over the samples
measured at or before the frame's instant; later ones wait for their frame.
"""

from __future__ import annotations

import heapq
import itertools
import queue
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np

from flightai.bus.wire import Message, Reason, WireError, decode
from flightai.config.schema import SignalSpec
from flightai.sched.io import Sample

TICK_TOPIC = "tick"


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
    """An :class:`~flightai.sched.io.InputSource` fed by the receiver thread.

    Args:
        on_tick: called (receiver thread) with each tick's instant, after the
            samples received before it are queued.
        max_lead_ns: samples stamped further than this past the frame being
            polled are refused as ``future_timestamp`` instead of buffered.
    """

    def __init__(self, on_tick: Callable[[int], None], max_lead_ns: int) -> None:
        self._queue: queue.SimpleQueue[Sample] = queue.SimpleQueue()
        self._pending: list[tuple[int, int, Sample]] = []
        self._order = itertools.count()
        self._on_tick = on_tick
        self._max_lead_ns = max_lead_ns
        self.future_rejects = 0

    def accept(self, message: Message) -> None:
        """Queue a checked sensor message, or pass a tick on (receiver thread)."""
        if message.topic == TICK_TOPIC:
            self._on_tick(message.t_ns)
            return
        _, array = message.arrays[0]
        self._queue.put(Sample(message.topic, message.t_ns, array))

    def poll(self, t_ns: int) -> list[Sample]:
        """Samples measured at or before ``t_ns``, in arrival order within one instant."""
        while True:
            try:
                sample = self._queue.get_nowait()
            except queue.Empty:
                break
            if sample.t_ns > t_ns + self._max_lead_ns:
                self.future_rejects += 1
                continue
            heapq.heappush(self._pending, (sample.t_ns, next(self._order), sample))
        ready = []
        while self._pending and self._pending[0][0] <= t_ns:
            ready.append(heapq.heappop(self._pending)[2])
        return ready
