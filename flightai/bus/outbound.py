"""Outputs, events, health telemetry and frame marks out, on one PUB socket.

Runs on the frame thread (it is an :class:`~flightai.sched.io.OutputSink`).
PUB never blocks: a slow subscriber loses messages at its high-water mark
rather than stalling the frame loop. libzmq drops those silently, so the
publisher cannot count them; every topic carries its own increasing ``seq``
and a subscriber sees its losses as gaps. Health is published every
``health_period_ms`` of mission time, so its rate is fixed whatever the clock.

Frame marks and outputs, sent every frame, are packed from per-topic pre-packed
header parts (:func:`~flightai.bus.wire.pack_header`), the same bytes
:func:`~flightai.bus.wire.encode` writes (checked on each layout's first use).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import zmq

from flightai.bus.sockets import COPY_THRESHOLD, NOBLOCK, SNDMORE, send_frames
from flightai.bus.wire import (
    T_NS_KEY,
    WIRE_DTYPES,
    arrays_part,
    descriptor,
    encode,
    header_prefix,
    pack_header,
)
from flightai.sched.health import Event, Health
from flightai.sched.io import Publication

HEALTH_TOPIC = "health"
EVENT_TOPIC = "event"
FRAME_TOPIC = "frame"
OUTPUT_PREFIX = "out."
_OUTPUT_KEYS = ("task", "t_release_ns", "status")
_MORE = NOBLOCK | SNDMORE


class _OutputLayout:
    """Pre-packed header parts of one task's outputs, for values of one dtype and shape each."""

    __slots__ = ("arrays", "copies", "middle", "prefix", "topic", "topic_str")

    def __init__(self, task: str, outputs: tuple[tuple[str, npt.NDArray[Any]], ...],
                 pack: Callable[[Any], bytes]) -> None:
        self.topic_str = OUTPUT_PREFIX + task
        self.topic = self.topic_str.encode()
        self.prefix = header_prefix(OUTPUT_PREFIX + task, len(_OUTPUT_KEYS))
        self.middle = (arrays_part([descriptor(name, value) for name, value in outputs])
                       + pack("task") + pack(task) + pack("t_release_ns"))
        self.arrays = tuple((name, value.dtype, value.shape) for name, value in outputs)
        self.copies = tuple(value.nbytes < COPY_THRESHOLD for _, value in outputs)

    def fits(self, outputs: tuple[tuple[str, npt.NDArray[Any]], ...]) -> bool:
        """Whether ``outputs`` have this layout and can be sent as they are."""
        if len(outputs) != len(self.arrays):
            return False
        for (name, value), (lname, dtype, shape) in zip(outputs, self.arrays, strict=True):
            if (name != lname or type(value) is not np.ndarray
                    or (value.dtype is not dtype and value.dtype != dtype)
                    or value.shape != shape or not value.flags.c_contiguous):
                return False
        return True


class BusSink:
    """Publishes everything the executive emits.

    Args:
        socket: a bound PUB socket, used only from the frame thread.
        health_period_ns: mission time between two health messages.
        extra_status: adds bus and model facts to each status snapshot.
    """

    def __init__(self, socket: zmq.Socket[bytes], health_period_ns: int,
                 extra_status: Callable[[], Mapping[str, Any]]) -> None:
        self._socket = socket
        self._period_ns = health_period_ns
        self._extra = extra_status
        self._packer = msgpack.Packer()
        self._pack = self._packer.pack
        self._seq: dict[str, int] = {}
        self._status: Mapping[str, Any] = {}
        self._frame_prefix = header_prefix(FRAME_TOPIC)
        self._no_arrays = arrays_part([])
        self._frame_topic = FRAME_TOPIC.encode()
        self._status_key = self._pack("status")
        #: per task: its output layout, or None when its values are sent by ``encode``
        self._layouts: dict[str, _OutputLayout | None] = {}
        self.dropped = 0

    @property
    def status(self) -> Mapping[str, Any]:
        """The latest status snapshot (replaced whole, so safe to read from any thread)."""
        return self._status

    def _next_seq(self, topic: str) -> int:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return seq

    def _emit(self, frames: list[Any]) -> None:
        try:
            send_frames(self._socket, frames, NOBLOCK)
        except zmq.ZMQError:  # the bus is closing; PUB itself drops silently per subscriber
            self.dropped += 1

    def _send(self, topic: str, t_ns: int, arrays: Any = (), fields: Any = None) -> None:
        self._emit(encode(topic, self._next_seq(topic), t_ns, arrays, fields, self._packer))

    def publish(self, publication: Publication) -> None:
        """One task's outputs at its deadline: topic ``out.<task>``."""
        task, outputs = publication.task, publication.outputs
        layout = self._layouts.get(task, False)
        if layout is False:
            layout = self._layouts[task] = self._output_layout(publication)
        if layout is None or not layout.fits(outputs):  # type: ignore[union-attr]
            self._send(OUTPUT_PREFIX + task, publication.t_ns, outputs,
                       dict(zip(_OUTPUT_KEYS, (task, publication.t_release_ns,
                                               publication.status), strict=True)))
            return
        assert isinstance(layout, _OutputLayout)
        pack = self._pack
        header = b"".join((
            layout.prefix, pack(self._next_seq(layout.topic_str)), T_NS_KEY,
            pack(publication.t_ns), layout.middle, pack(publication.t_release_ns),
            self._status_key, pack(publication.status)))
        send = self._socket.send
        try:  # send_frames, unrolled: this runs for every output of every frame
            send(layout.topic, _MORE)
            send(header, _MORE if outputs else NOBLOCK)
            last = len(outputs) - 1
            for i, (_, value) in enumerate(outputs):
                send(value, NOBLOCK if i == last else _MORE, layout.copies[i])  # type: ignore[call-overload]
        except zmq.ZMQError:
            self.dropped += 1

    def _output_layout(self, publication: Publication) -> _OutputLayout | None:
        """The task's layout if its values can go as they are and it packs as ``encode`` does."""
        outputs = publication.outputs
        if not all(type(v) is np.ndarray and v.dtype == WIRE_DTYPES.get(v.dtype.name)
                   for _, v in outputs):
            return None
        layout = _OutputLayout(publication.task, outputs, self._pack)
        if not layout.fits(outputs):
            return None
        fields = dict(zip(_OUTPUT_KEYS, (publication.task, 0, publication.status), strict=True))
        expected = encode(OUTPUT_PREFIX + publication.task, 0, 0, outputs, fields)[1]
        header = b"".join((pack_header(layout.prefix, 0, 0, layout.middle, self._pack),
                           self._pack(0), self._status_key, self._pack(publication.status)))
        return layout if header == expected else None

    def event(self, event: Event) -> None:
        """One event: topic ``event``."""
        self._send(EVENT_TOPIC, event.t_ns, (), {
            "severity": event.severity.name, "kind": event.kind, "task": event.task,
            "detail": event.detail})

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Publish health when its period comes round, then the frame mark.

        The mark is the frame's last message: a lockstep peer that has it has
        everything the frame published.
        """
        if t_ns % self._period_ns == 0:
            status = {"t_ns": t_ns, **health.snapshot(), **self._extra(),
                      "output_drops": self.dropped}
            self._status = status
            self._send(HEALTH_TOPIC, t_ns, (), {"health": status})
        self._emit([self._frame_topic, pack_header(
            self._frame_prefix, self._next_seq(FRAME_TOPIC), t_ns, self._no_arrays, self._pack)])
