"""The runtime's side of the bus: sockets, command thread, security.

The sensors socket is read on the frame thread (:class:`BusInput`: drained
each frame, and pumped while the external clock waits for a tick); a receiver
thread serves only the command socket.

Build it before the executive (its input and sink go into the executive),
then :meth:`BusServer.attach` the executive and :meth:`BusServer.start`::

    bus = BusServer(config, clock)
    executive = build_executive(config, clock=clock, source=bus.input, sinks=[bus.sink])
    bus.attach(executive)
    bus.start()
    try:
        executive.run()
    finally:
        bus.close()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import zmq

from flightai.bus.commands import CommandProcessor
from flightai.bus.inbound import BusInput, InboundChecks
from flightai.bus.outbound import BusSink
from flightai.bus.sockets import Security, server_socket, zmq_errors
from flightai.bus.wire import Reason
from flightai.config.schema import MissionConfig
from flightai.errors import BusError
from flightai.infer.session import SessionReport
from flightai.sched.clock import Clock, ExternalClock
from flightai.sched.executive import Executive
from flightai.timebase import NS_PER_MS, NS_PER_S

_POLL_MS = 50


class BusServer:
    """Binds the sensors (PULL), outputs (PUB) and commands (ROUTER) sockets.

    Args:
        config: the mission; its ``[bus]`` section must be present.
        clock: ticks on the bus drive it when it is an :class:`ExternalClock`.

    Raises:
        BusError: no ``[bus]`` section, a socket cannot be bound, or CURVE
            security cannot be proven to work (nothing is bound then).
    """

    def __init__(self, config: MissionConfig, clock: Clock) -> None:
        if config.bus is None:
            raise BusError("the mission has no [bus] section")
        self.config = config
        bus = config.bus
        self._clock = clock
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._executive: Executive | None = None
        self._models: dict[str, Any] = {}
        self._bundle: dict[str, Any] | None = None
        self.security: Security | None = None
        self.ticks_ignored = 0
        try:
            if bus.curve is not None:
                self.security = Security(self._context, bus.curve, self._on_auth_death)
                self.security.start()
            self._sensors = server_socket(self._context, zmq.PULL, bus.sensors, bus.sensor_hwm,
                                          self.security)
            self._commands = server_socket(self._context, zmq.ROUTER, bus.commands,
                                           bus.sensor_hwm, self.security)
            self._outputs = server_socket(self._context, zmq.PUB, bus.outputs, bus.output_hwm,
                                          self.security)
        except BaseException:
            self._close_context()
            raise
        inputs = {s.name: s for s in config.signals if s.input}
        self.checks = InboundChecks(inputs, bus.max_message_bytes)
        authorise = None if self.security is None else (
            lambda frame: self._authorised(frame) is not None)
        self.input = BusInput(self._sensors, self.checks, authorise, self._on_tick,
                              max_lead_ns=NS_PER_S, max_buffered_bytes=bus.max_buffered_bytes)
        if isinstance(clock, ExternalClock):
            clock.set_pump(self.input.pump)
        self.sink = BusSink(self._outputs, bus.health_period_ms * NS_PER_MS, self._status_extra)
        self._processor: CommandProcessor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, executive: Executive,
               models: Mapping[str, SessionReport] | None = None,
               bundle: Mapping[str, Any] | None = None) -> None:
        """Give commands their target, and health the model reports (before :meth:`start`).

        ``bundle`` is the active bundle's id, version and mission (health key
        ``bundle``; nil when the mission was not loaded from a bundle).
        """
        self._executive = executive
        self._bundle = dict(bundle) if bundle is not None else None
        self._models = {
            name: {"sha256": r.sha256, "providers": list(r.running), "fallback": r.fallback,
                   "nodes_by_provider": dict(r.nodes_by_provider)}
            for name, r in (models or {}).items()}
        classes = self.security.classes if self.security is not None else None
        self._processor = CommandProcessor(
            executive, lambda: {**self.sink.status, **self._status_extra()},
            lambda: executive.health.mode, frozenset(executive.health.tasks), classes)

    def start(self) -> None:
        """Start the receiver thread (commands; sensors are read on the frame thread)."""
        if self._processor is None:
            raise BusError("attach an executive before starting the bus")
        self._thread = threading.Thread(target=self._receive, name="flightai-bus", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the receiver thread and close every socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.security is not None:
            self.security.stop()
        self._close_context()

    def _close_context(self) -> None:
        if not self._context.closed:
            self._context.destroy(linger=0)

    # -- receiver thread ----------------------------------------------------------------------

    def _receive(self) -> None:
        with zmq_errors("receive commands on the bus"):
            while not self._stop.is_set():
                if self._commands.poll(_POLL_MS):
                    self._drain_commands()

    def _authorised(self, frame: zmq.Frame) -> str | None:
        """The client key of a message, or None when it must be dropped (CURVE only)."""
        if self.security is None:
            return ""
        try:
            user_id = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        if not isinstance(user_id, str) or not self.security.allowed(user_id):
            return None
        return user_id

    def _drain_commands(self) -> None:
        assert self._processor is not None
        for _ in range(100):
            try:
                frames = self._commands.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            request_style = len(frames) >= 3 and len(frames[1]) == 0
            envelope = [identity, b""] if request_style else [identity]
            payload = frames[len(envelope)].bytes if len(frames) > len(envelope) else b""
            user = self._authorised(frames[-1])
            if user is None:
                continue  # an unauthorised peer gets nothing, not even a refusal
            client = user or identity.hex()
            reply = self._processor.handle(client, payload)
            with contextlib.suppress(zmq.Again):  # the client is gone or not reading
                self._commands.send_multipart([*envelope, reply], zmq.NOBLOCK)

    def _on_tick(self, t_ns: int) -> bool:
        """Advance the external clock; True when it moved (the sensors drain then stops)."""
        if isinstance(self._clock, ExternalClock):
            now = self._clock.now_ns
            self._clock.tick(t_ns)
            return now is None or t_ns > now
        self.ticks_ignored += 1
        return False

    def _on_auth_death(self) -> None:
        if self._executive is not None:
            self._executive.request_enter_safe("CURVE authenticator died")

    def _status_extra(self) -> Mapping[str, Any]:
        """Bus and command counters, for health messages and status replies (any thread)."""
        rejects = {reason: n for reason, n in self.checks.rejects.items() if n > 0}
        if self.input.future_rejects:
            future = Reason.FUTURE_TIMESTAMP.value
            rejects[future] = rejects.get(future, 0) + self.input.future_rejects
        processor = self._processor
        return {
            "bus": {"received": self.checks.received, "rejects": rejects,
                    "sequence_gaps": self.checks.gaps, "ticks_ignored": self.ticks_ignored,
                    "secure": self.security is not None,
                    "authenticator_alive": self.security is None or not self.security.dead},
            "commands": {"accepted": processor.accepted if processor else 0,
                         "rejected": dict(processor.rejected) if processor else {}},
            "models": self._models,
            "bundle": self._bundle,
        }
