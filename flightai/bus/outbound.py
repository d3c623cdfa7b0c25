"""Outputs, events, health telemetry and frame marks out, on one PUB socket.

Runs on the frame thread (it is an :class:`~flightai.sched.io.OutputSink`).
PUB never blocks: a slow subscriber loses messages at its high-water mark
rather than stalling the frame loop. libzmq drops those silently, so the
publisher cannot count them; every topic carries its own increasing ``seq``
and a subscriber sees its losses as gaps. Health is published every
``health_period_ms`` of mission time, so its rate is fixed whatever the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import zmq

from flightai.bus.wire import encode
from flightai.sched.health import Event, Health
from flightai.sched.io import Publication

HEALTH_TOPIC = "health"
EVENT_TOPIC = "event"
FRAME_TOPIC = "frame"
OUTPUT_PREFIX = "out."


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
        self._seq: dict[str, int] = {}
        self._status: Mapping[str, Any] = {}
        self.dropped = 0

    @property
    def status(self) -> Mapping[str, Any]:
        """The latest status snapshot (replaced whole, so safe to read from any thread)."""
        return self._status

    def _send(self, topic: str, t_ns: int, arrays: Any = (), fields: Any = None) -> None:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        frames = encode(topic, seq, t_ns, arrays, fields, self._packer)
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError:  # the bus is closing; PUB itself drops silently per subscriber
            self.dropped += 1

    def publish(self, publication: Publication) -> None:
        """One task's outputs at its deadline: topic ``out.<task>``."""
        self._send(OUTPUT_PREFIX + publication.task, publication.t_ns, publication.outputs,
                   {"task": publication.task, "t_release_ns": publication.t_release_ns,
                    "status": publication.status})

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
        self._send(FRAME_TOPIC, t_ns)
