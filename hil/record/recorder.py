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
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
from mcap.writer import CompressionType, Writer

from flightai.bus.wire import UNPACK_ERRORS
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
        self._queue: queue.Queue[Any] = queue.Queue(self.options.queue_size)
        self._drop_lock = threading.Lock()
        self._stop_readers = threading.Event()
        self._readers: list[threading.Thread] = []
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._closed = False
        self._file = open(path, "wb")  # noqa: SIM115 - closed by the writer thread
        self._writer = Writer(self._file, chunk_size=1 << 62,  # we close chunks ourselves
                              compression=_COMPRESSION[self.options.compression],
                              enable_data_crcs=True)
        self._writer.start(profile=PROFILE, library="flightai-hil-recorder")
        self._channels: dict[tuple[str, str], int] = {}
        self._last_seq: dict[str, int] = {}
        self._thread = threading.Thread(target=self._write_loop, name="mcap-writer", daemon=True)
        self._thread.start()
        self.add_metadata(META_PLATFORM, fingerprint())

    # -- producers (any thread) -------------------------------------------------------------

    def record(self, frames: Sequence[Any], direction: str = FROM_RUNTIME,
               log_time_ns: int | None = None) -> bool:
        """Queue one multipart message (frame 0 the topic); False when dropped (queue full)."""
        item = (frames, direction, time.time_ns() if log_time_ns is None else log_time_ns)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._drop_lock:
                self.stats.drops += 1
            return False
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

    def _call(self, action: Callable[[Writer], None]) -> None:
        self._queue.put(action)  # blocks rather than lose metadata

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
        writer, options = self._writer, self.options
        opened: float | None = None  # monotonic time the open chunk got its first message
        size = 0
        while True:
            timeout = None if opened is None else max(
                0.0, opened + options.chunk_time_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is None or isinstance(item, _Stop):
                if opened is not None:
                    writer.flush()  # type: ignore[no-untyped-call]  # closes the chunk, hands it to the OS
                    self.stats.chunks += 1
                    opened, size = None, 0
                if item is None:
                    continue
                break
            if callable(item):
                item(writer)
                writer.flush()  # type: ignore[no-untyped-call]
                if opened is not None:
                    self.stats.chunks += 1
                    opened, size = None, 0
                continue
            size += self._write(*item)
            if opened is None:
                opened = time.monotonic()
            if size >= options.chunk_bytes or time.monotonic() - opened >= options.chunk_time_s:
                writer.flush()  # type: ignore[no-untyped-call]
                self.stats.chunks += 1
                opened, size = None, 0
        writer.add_metadata(META_RECORDER, self.stats.to_metadata())
        writer.finish()  # type: ignore[no-untyped-call]
        self._file.close()

    def _write(self, frames: Sequence[Any], direction: str, log_time_ns: int) -> int:
        topic = _as_bytes(frames[0]).decode(errors="replace")
        data = pack_frames(frames[1:])
        seq, t_ns = _seq_and_time(frames)
        key = (topic, direction)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._writer.register_channel(topic, MESSAGE_ENCODING, 0,
                                                    {"direction": direction})
            self._channels[key] = channel
        stats = self.stats
        stats.messages[topic] = stats.messages.get(topic, 0) + 1
        if seq is not None:
            last = self._last_seq.get(topic)
            if last is not None and seq > last + 1:
                stats.seq_gaps[topic] = stats.seq_gaps.get(topic, 0) + seq - last - 1
            self._last_seq[topic] = seq
        self._writer.add_message(channel, log_time_ns, data, max(t_ns, 0),
                                 sequence=(seq or 0) & 0xFFFFFFFF)
        return len(data) + len(topic) + _MESSAGE_OVERHEAD

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> RecorderStats:
        """Stop reading, write everything queued, the counters and the summary; close the file."""
        if not self._closed:
            self._closed = True
            self._stop_readers.set()
            for thread in self._readers:
                thread.join()
            if self._context is not None:
                self._context.term()
            self._queue.put(_STOP)
            self._thread.join()
        return self.stats

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seq_and_time(frames: Sequence[Any]) -> tuple[int | None, int]:
    """The header's ``seq`` and ``t_ns`` (None and 0 when the header is not a readable map)."""
    try:
        header = msgpack.unpackb(_as_bytes(frames[1]), raw=False, strict_map_key=False)
        seq, t_ns = header.get("seq"), header.get("t_ns")
    except (IndexError, AttributeError, *UNPACK_ERRORS):
        return None, 0
    return (seq if type(seq) is int else None), (t_ns if type(t_ns) is int else 0)

