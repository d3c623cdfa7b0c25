"""A live Foxglove view of a running runtime, served over a WebSocket.

Subscribes to a runtime's outputs, like ``flightai hil record``, and serves
over foxglove-sdk's WebSocket server (subprotocol ``foxglove.sdk.v1``,
loopback by default) every bus topic as JSON (header fields, each array's
dtype and shape, and its values when small) and the Foxglove views of
:mod:`hil.record.views` (images, pose, trajectory, plots, events). Foxglove
connects to it with "Open connection", Foxglove WebSocket, ``ws://HOST:PORT``.

Live means best effort: a client too slow for the stream loses the oldest
messages (the server's per-client backlog), and a view loop too slow for the
runtime loses what the SUB socket's high-water mark drops. A recording is the
exact record; this is for watching.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import zmq
from foxglove import Context, start_server
from foxglove._foxglove_py import BaseChannel
from foxglove.websocket import WebSocketServer

from flightai.bus.wire import MAX_OUTBOUND_HEADER_BYTES, Message, WireError, decode
from hil.record.views import (
    LTD1_VIEWS,
    SignalView,
    ViewMaker,
    as_bytes,
    json_channel,
    json_schema_of,
    wire_json,
)

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765


class LiveView:
    """Serves a runtime's outputs and their views on a Foxglove WebSocket server.

    Args:
        outputs: the runtime's outputs endpoint (its PUB socket), e.g. ``tcp://127.0.0.1:5551``.
        host: the interface the server listens on (loopback by default).
        port: the server's TCP port; 0 picks a free one (see :attr:`port`).
        prefixes: topics to subscribe to (prefixes of frame 0; all by default).
        signals: per-signal view refinements.
        rcvhwm: messages the SUB socket holds before dropping (keeps the view live).

    Call :meth:`run` (blocks until ``stop`` is set), or :meth:`start` (a thread of its
    own), then :meth:`close`. :meth:`publish_sent` adds what a sender sends (a stub's
    ``on_send``), which no SUB socket can see.
    """

    def __init__(self, outputs: str, host: str = LOOPBACK, port: int = DEFAULT_PORT,
                 prefixes: Iterable[str] = ("",),
                 signals: Mapping[str, SignalView] = LTD1_VIEWS, rcvhwm: int = 1000) -> None:
        self.context = Context()  # the server's channels only
        self.views = ViewMaker(self.context, signals)
        self.messages = 0
        self.refused = 0
        self._wire: dict[str, BaseChannel] = {}
        self._lock = threading.Lock()  # publish: the SUB loop and a sender's thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.server: WebSocketServer = start_server(name="flightai", host=host, port=port,
                                                    context=self.context)
        self._zmq = zmq.Context()
        self._socket = self._zmq.socket(zmq.SUB)
        try:
            self._socket.rcvhwm = rcvhwm
            self._socket.linger = 0
            for prefix in prefixes:
                self._socket.subscribe(prefix.encode())
            self._socket.connect(outputs)
        except zmq.ZMQError:  # e.g. a malformed endpoint
            self.close()
            raise

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self.server.port

    def run(self, stop: threading.Event) -> None:
        """Republish what the runtime publishes until ``stop`` is set."""
        socket = self._socket
        while not stop.is_set():
            if not socket.poll(100):
                continue
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.publish(frames, time.time_ns())

    def start(self) -> None:
        """Run :meth:`run` on a thread of its own until :meth:`close`."""
        self._thread = threading.Thread(target=self.run, args=(self._stop,), daemon=True,
                                        name="flightai-live-view")
        self._thread.start()

    def publish_sent(self, frames: Sequence[Any]) -> None:
        """Publish a message sent to the runtime (frames as ``encode`` gives them)."""
        self.publish([f if type(f) is bytes else as_bytes(f) for f in frames], time.time_ns())

    def publish(self, frames: Sequence[bytes], log_time_ns: int) -> None:
        """Log one bus message as JSON on its topic's channel, and its views."""
        try:
            message = decode(frames, max_message_bytes=1 << 30,
                             max_header_bytes=MAX_OUTBOUND_HEADER_BYTES)
        except WireError:
            with self._lock:
                self.refused += 1
            return
        with self._lock:
            self._publish(message, log_time_ns)

    def _publish(self, message: Message, log_time_ns: int) -> None:
        value = wire_json(message)
        channel = self._wire.get(message.topic)
        if channel is None:
            channel = self._wire[message.topic] = json_channel(
                self.context, message.topic,
                json_schema_of(value, f"flightai.wire.{message.topic}"))
        channel.log(json.dumps(value, allow_nan=False).encode(), log_time_ns)
        self.views.log_message(message, log_time_ns)
        self.messages += 1

    def close(self) -> None:
        """Stop the thread (if started) and the server, and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.server.stop()
        self._socket.close()
        self._zmq.term()

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
