"""A small Python client of the runtime's bus: publish sensors and ticks, subscribe, command.

Example::

    with Client(name="fsw") as client:
        client.publish("imu.accel", t_ns, np.zeros(3, np.float32))
        client.tick(t_ns)
        ack = client.command("set_mode", mode="SAFE")
        assert ack.accepted, ack.reason

Each sensor topic gets its own increasing sequence number, and so does each
command, as ``docs/icd.md`` requires.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import zmq

from flightai.bus.inbound import TICK_TOPIC
from flightai.bus.sockets import (
    COPY_THRESHOLD,
    load_certificate,
    load_secret_key,
    send_frames,
    zmq_errors,
)
from flightai.bus.wire import (
    MAX_OUTBOUND_HEADER_BYTES,
    PROTOCOL_VERSION,
    T_NS_KEY,
    Message,
    arrays_part,
    decode,
    descriptor,
    encode,
    header_prefix,
    is_wire_ready,
    pack_header,
)
from flightai.errors import BusError

DEFAULT_SENSORS = "tcp://127.0.0.1:5550"
DEFAULT_OUTPUTS = "tcp://127.0.0.1:5551"
DEFAULT_COMMANDS = "tcp://127.0.0.1:5552"

_MORE, _NOBLOCK = int(zmq.SNDMORE), int(zmq.NOBLOCK)


class _SampleLayout:
    """Pre-packed header parts of one topic's samples, for arrays of one dtype and shape."""

    __slots__ = ("copy", "dtype", "prefix", "shape", "suffix", "topic")

    def __init__(self, topic: str, value: npt.NDArray[Any]) -> None:
        self.topic = topic.encode()
        self.prefix = header_prefix(topic)
        self.suffix = arrays_part([descriptor("value", value)])
        self.dtype = value.dtype
        self.shape = value.shape
        self.copy = value.nbytes < COPY_THRESHOLD  # below it pyzmq copies anyway


@dataclass(frozen=True)
class ClientKeys:
    """CURVE keys of a client: the server's public key and the client's own pair (Z85)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key: Path, client_secret_key: Path) -> ClientKeys:
        """Load ``server.key`` (public) and the client's ``.key_secret`` file."""
        server_public, _ = load_certificate(server_key)
        public, secret = load_secret_key(client_secret_key)
        return cls(server_public, public, secret)


@dataclass(frozen=True)
class Ack:
    """A command's acknowledgement."""

    seq: int | None
    status: str
    reason: str | None
    detail: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """True when the runtime accepted the command."""
        return self.status == "accepted"


class Client:
    """Connects to a runtime's three sockets (each lazily, on first use).

    Args:
        sensors: the runtime's sensors endpoint (we PUSH).
        outputs: its outputs endpoint (we SUB).
        commands: its commands endpoint (we are a DEALER).
        keys: CURVE keys when the runtime requires them.
        name: routing id of our command socket (our command sequence space
            without CURVE; with CURVE our key is).
        timeout_ms: how long :meth:`command` waits for its acknowledgement.
    """

    def __init__(self, sensors: str = DEFAULT_SENSORS, outputs: str = DEFAULT_OUTPUTS,
                 commands: str = DEFAULT_COMMANDS, keys: ClientKeys | None = None,
                 name: str = "flightai-client", timeout_ms: int = 2000,
                 first_command_seq: int = 1) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._endpoints = {"sensors": sensors, "outputs": outputs, "commands": commands}
        self._keys = keys
        self._name = name
        self._timeout_ms = timeout_ms
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._seq: dict[str, int] = {}
        self._command_seq = itertools.count(first_command_seq)
        self._packer = msgpack.Packer()
        self._pack = self._packer.pack
        self._layouts: dict[str, _SampleLayout] = {}
        self._send: Callable[..., Any] | None = None  # the sensors socket's send
        self._outputs_poll: list[tuple[zmq.Socket[bytes], int]] | None = None
        self._tick_topic = TICK_TOPIC.encode()
        self._tick_prefix = header_prefix(TICK_TOPIC)
        self._no_arrays = arrays_part([])

    def _socket(self, role: str) -> zmq.Socket[bytes]:
        socket = self._sockets.get(role)
        if socket is None:
            kind = {"sensors": zmq.PUSH, "outputs": zmq.SUB, "commands": zmq.DEALER}[role]
            with zmq_errors(f"connect to {self._endpoints[role]}"):
                socket = self._context.socket(kind)
                socket.linger = 1000 if role == "sensors" else 0
                if self._keys is not None:
                    socket.curve_serverkey = self._keys.server_public
                    socket.curve_publickey = self._keys.public
                    socket.curve_secretkey = self._keys.secret
                if role == "commands":
                    socket.routing_id = self._name.encode()
                socket.connect(self._endpoints[role])
            self._sockets[role] = socket
        return socket

    def publish(self, topic: str, t_ns: int, value: npt.NDArray[Any],
                seq: int | None = None) -> int:
        """Send one sensor sample measured at ``t_ns``; returns the sequence number used.

        An array of 64 KiB or more is sent zero-copy: do not change it afterwards.
        """
        if seq is None:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
        layout = self._layouts.get(topic)
        if (layout is None or type(value) is not np.ndarray or value.dtype is not layout.dtype
                or value.shape != layout.shape or not value.flags.c_contiguous):
            layout = self._layout(topic, value)
            if layout is None:  # not sendable as it is: encode converts it
                send_frames(self._socket("sensors"),
                            encode(topic, seq, t_ns, [("value", value)], packer=self._packer))
                return seq
        send = self._send or self._sender()
        pack = self._pack
        send(layout.topic, _MORE)
        send(b"".join((layout.prefix, pack(seq), T_NS_KEY, pack(t_ns), layout.suffix)), _MORE)
        send(value, 0, layout.copy)
        return seq

    def _sender(self) -> Callable[..., Any]:
        self._send = self._socket("sensors").send
        return self._send

    def _layout(self, topic: str, value: npt.NDArray[Any]) -> _SampleLayout | None:
        """Pre-packed header parts for samples like ``value`` on ``topic`` (None: use encode)."""
        if not is_wire_ready(value):
            return None
        layout = _SampleLayout(topic, value)
        self._layouts[topic] = layout
        return layout

    def tick(self, t_ns: int) -> None:
        """Advance an external-clock runtime to ``t_ns`` (after the samples sent before)."""
        seq = self._seq.get(TICK_TOPIC, 0)
        self._seq[TICK_TOPIC] = seq + 1
        send = self._send or self._sender()
        send(self._tick_topic, _MORE)
        send(pack_header(self._tick_prefix, seq, t_ns, self._no_arrays, self._pack))

    def send_raw(self, frames: Sequence[bytes]) -> None:
        """Send frames as they are on the sensors socket (tests of bad input)."""
        self._socket("sensors").send_multipart(list(frames))

    def subscribe(self, prefixes: Iterable[str] = ("",)) -> None:
        """Receive output, health, event and frame messages whose topic starts with a prefix."""
        socket = self._socket("outputs")
        for prefix in prefixes:
            socket.subscribe(prefix.encode())

    def receive(self, timeout_ms: int = 1000) -> Message | None:
        """The next subscribed message, or None after ``timeout_ms``."""
        socket = self._socket("outputs")
        if self._outputs_poll is None:
            self._outputs_poll = [(socket, zmq.POLLIN)]
        # poll first: a receive on an empty socket raises zmq.Again, four times the cost
        if not zmq.zmq_poll(self._outputs_poll, timeout_ms):
            return None
        # Frame.more rather than recv_multipart's getsockopt(RCVMORE), cheaper in pyzmq
        frame = socket.recv(_NOBLOCK, False)
        frames: list[Any] = [frame.bytes]
        while frame.more:
            frame = socket.recv(_NOBLOCK, False)
            frames.append(frame.bytes)
        return decode(frames, max_message_bytes=1 << 30,
                      max_header_bytes=MAX_OUTBOUND_HEADER_BYTES)

    def command(self, cmd: str, seq: int | None = None, **args: Any) -> Ack:
        """Send a command and wait for its acknowledgement.

        Raises:
            BusError: no acknowledgement within ``timeout_ms``.
        """
        seq = next(self._command_seq) if seq is None else seq
        socket = self._socket("commands")
        socket.send(self._packer.pack({"v": PROTOCOL_VERSION, "cmd": cmd, "seq": seq,
                                       "args": args}))
        while socket.poll(self._timeout_ms):
            reply = msgpack.unpackb(socket.recv(), raw=False)
            if reply.get("seq") in (seq, None):
                return Ack(reply.get("seq"), reply["status"], reply.get("reason"),
                           reply.get("detail", ""), reply.get("result") or {})
        raise BusError(f"no acknowledgement of {cmd!r} from {self._endpoints['commands']} "
                       f"within {self._timeout_ms} ms")

    def status(self) -> dict[str, Any]:
        """The runtime's latest status snapshot (raises when refused)."""
        ack = self.command("status")
        if not ack.accepted:
            raise BusError(f"status refused: {ack.reason}: {ack.detail}")
        return ack.result

    def close(self) -> None:
        """Close every socket."""
        self._context.destroy(linger=1000)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

