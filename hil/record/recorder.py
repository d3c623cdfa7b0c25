"""Record bus traffic to MCAP, on threads of its own.

Producers (a SUB socket's reader thread, a flight-software stub calling
:meth:`Recorder.record`) only put the frames on a bounded queue; one writer
thread owns the :class:`mcap.writer.Writer`. Closing a chunk stalls the writer
for milliseconds, so nothing here ever runs on a runtime's executive thread.

Each topic is one channel (message encoding ``msgpack``, no schema). A message's
data is the multipart message minus the topic frame (which is the channel's
topic) as one msgpack array of bin: ``[header frame, array frame 0, ...]``, each
frame byte for byte as on the wire (:func:`pack_frames`). ``log_time`` is the
wall time the recorder received (or was handed) the message, ``publish_time``
the message's logical ``t_ns`` (0 when negative or unreadable).

Chunks close when they hold ``chunk_bytes`` or have been open ``chunk_time_s``,
whichever comes first, and every closed chunk is handed to the OS at once: a
killed recorder loses at most the chunk still open (``flightai hil recover``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
from mcap.writer import CompressionType, Writer

from flightai.bus.wire import T_NS_KEY, UNPACK_ERRORS, read_int64, read_uint
from hil.record.fingerprint import fingerprint

PROFILE = "flightai"
MESSAGE_ENCODING = "msgpack"
FROM_RUNTIME = "from_runtime"
TO_RUNTIME = "to_runtime"
META_CONFIG = "flightai.config"
META_MODELS = "flightai.models"
META_PLATFORM = "flightai.platform"
META_RECORDER = "flightai.recorder"
_MESSAGE_OVERHEAD = 31  # bytes of a Message record besides its data (opcode, length, fields)
_COMPRESSION = {"none": CompressionType.NONE, "zstd": CompressionType.ZSTD,
                "lz4": CompressionType.LZ4}


def pack_frames(frames: Sequence[Any]) -> bytes:
    """The MCAP message data of a multipart message's frames after the topic frame."""
    try:
        return msgpack.packb(frames)  # type: ignore[no-any-return]
    except TypeError:  # numpy arrays (frames from ``encode``) are not msgpack-able
        return msgpack.packb([f if isinstance(f, bytes) else _as_bytes(f) for f in frames])  # type: ignore[no-any-return]


def _as_bytes(frame: Any) -> bytes:
    if isinstance(frame, np.ndarray):
        return frame.tobytes()
    return bytes(frame)


@dataclass(frozen=True)
class RecorderOptions:
    """How a recorder writes.

    Attributes:
        chunk_bytes: close a chunk once it holds this many bytes.
        chunk_time_s: close a chunk once it has been open this long (wall time).
        queue_size: messages waiting for the writer; beyond it they are dropped (counted).
        compression: ``none``, ``zstd`` or ``lz4`` (the last two need their packages).
    """

    chunk_bytes: int = 1 << 20
    chunk_time_s: float = 1.0
    queue_size: int = 100_000
    compression: str = "none"


@dataclass
class RecorderStats:
    """What a recording holds, stored as the ``flightai.recorder`` metadata at close.

    Attributes:
        messages: messages written, per topic.
        seq_gaps: messages missing from each topic's ``seq`` sequence (lost upstream,
            e.g. at the runtime's PUB high-water mark).
        drops: messages the recorder dropped because its queue was full.
        chunks: chunks written.
    """

    messages: dict[str, int] = field(default_factory=dict)
    seq_gaps: dict[str, int] = field(default_factory=dict)
    drops: int = 0
    chunks: int = 0

    def to_metadata(self) -> dict[str, str]:
        """As MCAP metadata (string values)."""
        return {"messages": json.dumps(self.messages, sort_keys=True),
                "seq_gaps": json.dumps(self.seq_gaps, sort_keys=True),
                "drops": str(self.drops), "chunks": str(self.chunks)}


class _Stop:
    """Queue sentinel: finish the file."""


_STOP = _Stop()


class Recorder:
    """Records multipart bus messages to an MCAP file.

    Args:
        path: the file to write (replaced).
        options: chunking, queue and compression.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, options: RecorderOptions | None = None) -> None:
        self.options = options or RecorderOptions()
        self.stats = RecorderStats()
        # producers append, the writer pops: deque's append/popleft are atomic, no lock
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = False  # the writer waits on _wake: producers set it
        self._drop_lock = threading.Lock()
        self._stop_readers = threading.Event()
        self._readers: list[threading.Thread] = []
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._file = open(path, "wb")  # noqa: SIM115 - closed by the writer thread
        self._writer = Writer(self._file, chunk_size=1 << 62,  # we close chunks ourselves
                              compression=_COMPRESSION[self.options.compression],
                              enable_data_crcs=True)
        self._writer.start(profile=PROFILE, library="flightai-hil-recorder")
        self._channels: dict[tuple[bytes, str], _Channel] = {}
        self._thread = threading.Thread(target=self._write_loop, name="mcap-writer", daemon=True)
        self._thread.start()
        self.add_metadata(META_PLATFORM, fingerprint())

    # -- producers (any thread) -------------------------------------------------------------

    def record(self, frames: Sequence[Any], direction: str = FROM_RUNTIME,
               log_time_ns: int | None = None) -> bool:
        """Queue one multipart message (frame 0 the topic); False when dropped (queue full)."""
        if len(self._queue) >= self.options.queue_size or self._error is not None:
            with self._drop_lock:
                self.stats.drops += 1
            return False
        self._queue.append(
            (frames, direction, time.time_ns() if log_time_ns is None else log_time_ns))
        if self._idle:
            self._wake.set()
        return True

    def record_sent(self, frames: Sequence[Any]) -> bool:
        """Queue a message sent to the runtime (sensor sample, tick); see :meth:`record`."""
        return self.record(frames, TO_RUNTIME)

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        """Write a metadata record (in order with the messages)."""
        self._call(lambda w: w.add_metadata(name, data))

    def add_attachment(self, name: str, data: bytes, media_type: str) -> None:
        """Write an attachment (e.g. the mission file)."""
        now = time.time_ns()
        self._call(lambda w: w.add_attachment(now, now, name, media_type, data))

    def add_mission(self, mission: Path, overrides: Iterable[str] = ()) -> None:
        """Store a mission: its TOML text and overrides, its model hashes, the file itself."""
        from flightai.config.loader import load_mission

        text = mission.read_text(encoding="utf-8")
        overrides = list(overrides)
        self.add_metadata(META_CONFIG, {"mission_path": str(mission), "mission_toml": text,
                                        "overrides": "\n".join(overrides)})
        config = load_mission(mission, overrides)
        self.add_metadata(META_MODELS, {m.name: m.sha256 for m in config.models})
        self.add_attachment(mission.name, text.encode(), "application/toml")

    def _call(self, action: Callable[[Writer], object]) -> None:
        self._queue.append(action)  # never dropped: metadata matters more than a message
        self._wake.set()

    # -- sockets ----------------------------------------------------------------------------

    def subscribe(self, endpoint: str, prefixes: Iterable[str] = ("",),
                  rcvhwm: int = 100_000) -> None:
        """Record what a runtime publishes on ``endpoint`` (a SUB socket on a thread of its own).

        The subscription reaches the publisher asynchronously: messages published
        before it does are not seen (ZeroMQ's late joiner).
        """
        if self._context is None:
            self._context = zmq.Context()
        socket = self._context.socket(zmq.SUB)
        socket.rcvhwm = rcvhwm
        socket.linger = 0
        for prefix in prefixes:
            socket.subscribe(prefix.encode())
        socket.connect(endpoint)
        thread = threading.Thread(target=self._read_loop, args=(socket,), daemon=True,
                                  name=f"recorder-sub-{endpoint}")
        self._readers.append(thread)
        thread.start()

    def _read_loop(self, socket: zmq.Socket[bytes]) -> None:
        try:
            while not self._stop_readers.is_set():
                if not socket.poll(100):
                    continue
                while True:
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.record(frames)
        finally:
            socket.close()

    # -- the writer thread ------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self._write_all()
        except BaseException as exc:  # reported by close(); producers see a full queue
            self._error = exc
            self._file.close()

    def _write_all(self) -> None:
        writer, options, pending = self._writer, self.options, self._queue
        opened: float | None = None  # monotonic time the open chunk got its first message
        size = 0
        while True:
            if not pending:
                self._idle = True
                self._wake.clear()
                if not pending:  # a producer appending now sees _idle and sets _wake
                    timeout = None if opened is None else max(
                        0.0, opened + options.chunk_time_s - time.monotonic())
                    self._wake.wait(timeout)
                self._idle = False
            item = pending.popleft() if pending else None
            if type(item) is tuple:
                size += self._write(*item)
                if opened is None:
                    opened = time.monotonic()
                if size >= options.chunk_bytes or (
                        time.monotonic() - opened >= options.chunk_time_s):
                    self._close_chunk()
                    opened, size = None, 0
                continue
            # None (woken or timed out), a metadata or attachment call, or the stop
            if item is not None and not isinstance(item, _Stop):
                item(writer)  # written between chunks
            if opened is not None and (item is not None or time.monotonic() - opened
                                       >= options.chunk_time_s):
                self._close_chunk()
                opened, size = None, 0
            if isinstance(item, _Stop):
                break
        self._collect()
        writer.add_metadata(META_RECORDER, self.stats.to_metadata())
        writer.finish()  # type: ignore[no-untyped-call]
        self._file.close()

    def _close_chunk(self) -> None:
        """Close the open chunk and hand it to the OS (``Writer.flush``)."""
        self._writer.flush()  # type: ignore[no-untyped-call]
        self.stats.chunks += 1

    def _write(self, frames: Sequence[Any], direction: str, log_time_ns: int) -> int:
        topic_frame = _as_bytes(frames[0])
        channel = self._channels.get((topic_frame, direction))
        if channel is None:
            channel = self._channel(topic_frame, direction)
        data = pack_frames(frames[1:])
        seq, t_ns = channel.seq_and_time(frames[1] if len(frames) > 1 else b"")
        channel.count += 1
        if seq is not None:
            last = channel.last_seq
            if last is not None and seq > last + 1:
                channel.gaps += seq - last - 1
            channel.last_seq = seq
        self._writer.add_message(channel.id, log_time_ns, data, t_ns if t_ns > 0 else 0,
                                 sequence=(seq or 0) & 0xFFFFFFFF)
        return len(data) + channel.overhead

    def _channel(self, topic_frame: bytes, direction: str) -> _Channel:
        topic = topic_frame.decode(errors="replace")
        channel_id = self._writer.register_channel(topic, MESSAGE_ENCODING, 0,
                                                   {"direction": direction})
        channel = _Channel(channel_id, topic)
        self._channels[(topic_frame, direction)] = channel
        self.stats.messages.setdefault(topic, 0)
        self.stats.seq_gaps.setdefault(topic, 0)
        return channel

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> RecorderStats:
        """Stop reading, write everything queued, the counters and the summary; close the file.

        Raises:
            RuntimeError: the writer thread failed (e.g. the disk is full); the file is torn.
        """
        if not self._closed:
            self._closed = True
            self._stop_readers.set()
            for thread in self._readers:
                thread.join()
            if self._context is not None:
                self._context.term()
            self._queue.append(_STOP)
            self._wake.set()
            self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"the recorder's writer failed: {self._error!r}") from self._error
        return self.stats

    def _collect(self) -> None:
        """Per-channel counters into :attr:`stats` (topics in both directions add up)."""
        stats = self.stats
        stats.messages = {topic: 0 for topic in stats.messages}
        stats.seq_gaps = {}
        for channel in self._channels.values():
            stats.messages[channel.topic] += channel.count
            if channel.gaps:
                stats.seq_gaps[channel.topic] = stats.seq_gaps.get(channel.topic, 0) + channel.gaps

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Channel:
    """One MCAP channel (a topic in one direction) and its counters."""

    __slots__ = ("count", "gaps", "id", "last_seq", "overhead", "prefix", "topic")

    def __init__(self, channel_id: int, topic: str) -> None:
        self.id = channel_id
        self.topic = topic
        self.count = 0
        self.gaps = 0
        self.last_seq: int | None = None
        self.overhead = len(topic) + _MESSAGE_OVERHEAD
        # the header after its map marker, up to the seq value, as the reference encoder writes
        self.prefix = msgpack.packb("v") + msgpack.packb(1) + msgpack.packb("topic") \
            + msgpack.packb(topic) + msgpack.packb("seq")

    def seq_and_time(self, header: Any) -> tuple[int | None, int]:
        """The header's ``seq`` and ``t_ns`` (None and 0 when unreadable)."""
        if type(header) is not bytes:
            header = _as_bytes(header)
        prefix = self.prefix
        if header.startswith(prefix, 1) and header[0] & 0xF0 == 0x80:
            seq = read_uint(header, 1 + len(prefix))
            if seq is not None and header.startswith(T_NS_KEY, seq[1]):
                t_ns = read_int64(header, seq[1] + len(T_NS_KEY))
                if t_ns is not None:
                    return seq[0], t_ns[0]
        return _seq_and_time(header)


def _seq_and_time(header: bytes) -> tuple[int | None, int]:
    """``seq`` and ``t_ns`` of any header layout (None and 0 when not a readable map)."""
    try:
        fields = msgpack.unpackb(header, raw=False, strict_map_key=False)
        seq, t_ns = fields.get("seq"), fields.get("t_ns")
    except (AttributeError, *UNPACK_ERRORS):
        return None, 0
    return (seq if type(seq) is int else None), (t_ns if type(t_ns) is int else 0)
