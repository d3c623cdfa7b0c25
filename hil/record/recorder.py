"""Record bus traffic to MCAP, on a thread of its own.

One writer thread owns the file's one writer, foxglove-sdk's MCAP writer (Rust:
about 7x the messages per second of the pure-Python ``mcap`` writer), on a
:class:`foxglove.Context` of the recorder's own, and the SUB sockets of
:meth:`Recorder.subscribe`: it polls them and drains each in batches, frame by
frame, writing every message as it is read (a reader thread handing messages to
the writer would make two Python threads take turns on the GIL). A socket's
overflow is ZeroMQ's: past its high-water mark the publisher's messages are
dropped, which shows as gaps in the topics' ``seq``. Other producers (a
flight-software stub calling :meth:`Recorder.record`) put the frames on a
bounded queue, which the writer drains between the sockets' batches; a full
queue drops (counted). Nothing here ever runs on a runtime's executive thread.

Each topic is one channel (message encoding ``msgpack``, no schema). A message's
data is the multipart message minus the topic frame (which is the channel's
topic) as one msgpack array of bin: ``[header frame, array frame 0, ...]``, each
frame byte for byte as on the wire (:func:`pack_frames`). ``log_time`` is the
wall time the recorder received (or was handed) the message. Beside them, the
writer thread logs the Foxglove views of the messages (:mod:`hil.record.views`)
on ``/view/...`` channels, unless it is behind: a view is never worth a
dropped wire message.

Chunks close when they hold ``chunk_bytes`` or have been open ``chunk_time_s``,
whichever comes first (also while nothing arrives), and every closed chunk is
handed to the OS at once: a killed recorder loses at most the chunk still open
(``flightai hil recover``).
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socket import socketpair
from typing import Any

import msgpack
import zmq
from foxglove import Context, open_mcap
from foxglove.mcap import MCAPCompression, MCAPWriteOptions, MCAPWriter

from flightai.bus.sockets import COPY_THRESHOLD, NOBLOCK
from flightai.bus.wire import UINT_FORMATS, UNPACK_ERRORS
from hil.record.fingerprint import fingerprint
from hil.record.views import ViewMaker, as_bytes

PROFILE = "flightai"
MESSAGE_ENCODING = "msgpack"
FROM_RUNTIME = "from_runtime"
TO_RUNTIME = "to_runtime"
META_CONFIG = "flightai.config"
META_MODELS = "flightai.models"
META_PLATFORM = "flightai.platform"
META_RECORDER = "flightai.recorder"
_MESSAGE_OVERHEAD = 31  # bytes of a Message record besides its data (opcode, length, fields)
_COMPRESSION = {"none": None, "zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4}
#: Views are skipped (counted) while more messages than this wait for the writer (on a
#: SUB socket: while it has given this many in a row without running empty), or while
#: those messages, counted at the size of the one at hand, exceed the bytes.
VIEW_BACKLOG = 1000
VIEW_BACKLOG_BYTES = 8 << 20
_BATCH = 64  # messages the writer takes from one source before it looks at the others
_POLLIN = int(zmq.POLLIN)
#: a msgpack unsigned integer's marker byte -> the reader of its value after the marker
_UINT_READERS: dict[int, Callable[[bytes, int], tuple[int]]] = {
    marker: fmt.unpack_from for marker, (fmt, _) in UINT_FORMATS.items()}


def pack_frames(frames: Sequence[Any]) -> bytes:
    """The MCAP message data of a multipart message's frames after the topic frame."""
    try:
        return msgpack.packb(frames)  # type: ignore[no-any-return]
    except TypeError:  # numpy arrays (frames from ``encode``) are not msgpack-able
        return msgpack.packb([f if isinstance(f, bytes) else as_bytes(f) for f in frames])  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RecorderOptions:
    """How a recorder writes.

    Attributes:
        chunk_bytes: close a chunk once it holds this many bytes.
        chunk_time_s: close a chunk once it has been open this long (wall time).
        queue_size: messages handed to :meth:`Recorder.record` and waiting for the writer;
            beyond it they are dropped (counted). A SUB socket's bound is its ``rcvhwm``.
        compression: ``none``, ``zstd`` or ``lz4``.
        views: also write the Foxglove views (:mod:`hil.record.views`).
    """

    chunk_bytes: int = 1 << 20
    chunk_time_s: float = 1.0
    queue_size: int = 100_000
    compression: str = "none"
    views: bool = True


@dataclass
class RecorderStats:
    """What a recording holds, stored as the ``flightai.recorder`` metadata at close.

    Attributes:
        messages: messages written, per topic.
        seq_gaps: messages missing from each topic's ``seq`` sequence (lost upstream,
            e.g. at the runtime's PUB or the recorder's SUB high-water mark).
        drops: messages :meth:`Recorder.record` dropped because the queue was full.
        chunks: chunks written.
        views: view messages written (not in ``messages``).
        view_skips: wire messages whose views were skipped because the writer was behind.
    """

    messages: dict[str, int] = field(default_factory=dict)
    seq_gaps: dict[str, int] = field(default_factory=dict)
    drops: int = 0
    chunks: int = 0
    views: int = 0
    view_skips: int = 0

    def to_metadata(self) -> dict[str, str]:
        """As MCAP metadata (string values)."""
        return {"messages": json.dumps(self.messages, sort_keys=True),
                "seq_gaps": json.dumps(self.seq_gaps, sort_keys=True),
                "drops": str(self.drops), "chunks": str(self.chunks),
                "views": str(self.views), "view_skips": str(self.view_skips)}


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
        self._foxglove = Context()  # the file's channels only: nothing else logs to it
        self._writer = open_mcap(path, allow_overwrite=True, context=self._foxglove,
                                 writer_options=MCAPWriteOptions(
                                     compression=_COMPRESSION[self.options.compression],
                                     profile=PROFILE, chunk_size=None))  # we close chunks
        self._views = ViewMaker(self._foxglove) if self.options.views else None
        # per direction, per topic frame: the SUB sockets' lookup is one dict get
        self._channels: dict[str, dict[bytes, _Channel]] = {FROM_RUNTIME: {}, TO_RUNTIME: {}}
        # producers append, the writer pops: deque's append/popleft are atomic, no lock
        self._queue: deque[Any] = deque()
        # an idle writer waits in a poll of its SUB sockets and this socket pair's end;
        # a producer that finds it idle sends a byte on the other end (under the lock,
        # which close() takes to close them)
        self._wake_in, self._wake_out = socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._wake_lock = threading.Lock()
        self._idle = False
        self._drop_lock = threading.Lock()
        self._zmq: zmq.Context[zmq.Socket[bytes]] | None = None
        self._subs: list[zmq.Socket[bytes]] = []  # every SUB socket, closed by close()
        # what the writer polls: the wake end, then the SUB sockets handed over to it
        self._polled: list[tuple[Any, int]] = [(self._wake_in.fileno(), _POLLIN)]
        self._streaks: dict[zmq.Socket[bytes], int] = {}  # messages read since it ran empty
        self._opened: float | None = None  # monotonic time the open chunk got a message
        self._size = 0  # bytes in the open chunk
        self._chunk_bytes = self.options.chunk_bytes
        self._pack = msgpack.Packer().pack  # the writer thread's (pack_frames makes one a call)
        self._stopping = False
        self._closed = False
        self._error: BaseException | None = None
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
        self._queue.append((frames, direction,
                            time.time_ns() if log_time_ns is None else log_time_ns))
        if self._idle:  # the first producer to see it wakes the writer, not every one
            self._idle = False  # until the writer has the GIL back
            self._wake()
        return True

    def record_sent(self, frames: Sequence[Any]) -> bool:
        """Queue a message sent to the runtime (sensor sample, tick); see :meth:`record`."""
        return self.record(frames, TO_RUNTIME)

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        """Write a metadata record (in order with the messages)."""
        self._call(lambda w: w.write_metadata(name, data))

    def add_attachment(self, name: str, data: bytes, media_type: str) -> None:
        """Write an attachment (e.g. the mission file)."""
        now = time.time_ns()
        self._call(lambda w: w.attach(log_time=now, create_time=now, name=name,
                                      media_type=media_type, data=data))

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

    def _call(self, action: Callable[[MCAPWriter], object]) -> None:
        self._queue.append(action)  # never dropped: metadata matters more than a message
        self._wake()

    def _wake(self) -> None:
        """Wake the writer from its poll (a full socket buffer already will)."""
        with self._wake_lock, contextlib.suppress(BlockingIOError):
            if not self._closed:
                self._wake_out.send(b"\0")

    # -- sockets ----------------------------------------------------------------------------

    def subscribe(self, endpoint: str, prefixes: Iterable[str] = ("",),
                  rcvhwm: int = 100_000) -> None:
        """Record what a runtime publishes on ``endpoint`` (a SUB socket the writer reads).

        Messages that arrive while ``rcvhwm`` wait on the socket are dropped by ZeroMQ:
        gaps in their topics' ``seq`` (:attr:`RecorderStats.seq_gaps`). The subscription
        reaches the publisher asynchronously: messages published before it does are
        not seen (ZeroMQ's late joiner).
        """
        if self._zmq is None:
            self._zmq = zmq.Context()
        socket = self._zmq.socket(zmq.SUB)
        self._subs.append(socket)
        socket.rcvhwm = rcvhwm
        socket.linger = 0
        for prefix in prefixes:
            socket.subscribe(prefix.encode())
        socket.connect(endpoint)
        # from here on only the writer thread uses it (the queue hands it over)
        self._call(lambda _writer: self._polled.append((socket, _POLLIN)))

    def _drain(self, socket: zmq.Socket[bytes], limit: int = _BATCH) -> int:
        """Write up to ``limit`` messages waiting on ``socket``; returns how many it read.

        :meth:`_write` specialised for a socket's frames (bytes, or buffers from
        :data:`~flightai.bus.sockets.COPY_THRESHOLD` bytes on), its per-message work
        inlined. Each message's log time is read once it is received (one clock read a
        batch saved no measurable time, and would give a drain's messages one log time:
        a view is matched to its wire message by log time).
        """
        # Frames, not recv_multipart: Frame.more is cheaper than getsockopt(RCVMORE); a
        # long frame is packed from its buffer, not copied out of it first
        recv, pack, readers, clock = socket.recv, self._pack, _UINT_READERS, time.time_ns
        channels = self._channels[FROM_RUNTIME]
        streak = self._streaks.get(socket, 0)
        size, chunk_bytes, skips = self._size, self._chunk_bytes, 0  # size 0: no open chunk
        count = limit
        try:
            for read in range(limit):
                try:
                    frame = recv(NOBLOCK, False)
                except zmq.Again:
                    count, streak = read, 0
                    break
                topic_frame = frame.bytes
                if frame.more:  # the frames after the topic frame, packed as they are
                    frame = recv(NOBLOCK, False)
                    header: Any = frame.bytes if len(frame) < COPY_THRESHOLD else frame.buffer
                    rest: list[Any] = [header]
                    while frame.more:
                        frame = recv(NOBLOCK, False)
                        rest.append(frame.bytes if len(frame) < COPY_THRESHOLD else frame.buffer)
                else:
                    header, rest = b"", []
                log_time_ns = clock()
                channel = channels.get(topic_frame)
                if channel is None:
                    channel = self._channel(topic_frame, FROM_RUNTIME)
                data = pack(rest)
                channel.log(data, log_time_ns)
                channel.count += 1
                try:  # the seq of a header laid out as the channel's last (_Channel.seq)
                    if header.startswith(channel.head):
                        seq = header[channel.seq_at]
                        if seq >= 0x80:
                            seq = readers[seq](header, channel.seq_at + 1)[0]
                    else:
                        seq = channel.seq(header)
                except (AttributeError, IndexError, KeyError, struct.error):  # buffer, cut short
                    seq = channel.seq(header)
                if seq is not None:
                    last = channel.last_seq
                    if last is not None and seq > last + 1:
                        channel.gaps += seq - last - 1
                    channel.last_seq = seq
                if channel.views:
                    if streak < VIEW_BACKLOG and streak * len(data) < VIEW_BACKLOG_BYTES:
                        self.stats.views += self._views.log(  # type: ignore[union-attr]
                            [topic_frame, *rest], log_time_ns)
                    else:
                        skips += 1
                if not size:
                    self._opened = time.monotonic()
                size += len(data) + channel.overhead
                streak += 1
                if size >= chunk_bytes:
                    self._close_chunk()
                    size = 0
        finally:
            self._streaks[socket] = streak
            self._size = size
            self.stats.view_skips += skips
        return count

    # -- the writer thread ------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self._write_all()
        except BaseException as exc:  # reported by close(); producers see a full queue
            self._error = exc
            with contextlib.suppress(Exception):  # the first error is the one reported
                self._writer.close()

    def _write_all(self) -> None:
        polled, pending, chunk_time_s = self._polled, self._queue, self.options.chunk_time_s
        busy = False  # the last round wrote something: look again at once
        while not self._stopping:
            if busy:
                ready = zmq.zmq_poll(polled, 0) if len(polled) > 1 else []
            else:
                self._idle = True
                # a producer appending now sees _idle and wakes the poll
                ready = zmq.zmq_poll(polled, 0 if pending else self._until_chunk_due())
                self._idle = False
            busy = False
            for source, _ in ready:
                if isinstance(source, int):
                    with contextlib.suppress(BlockingIOError):
                        self._wake_in.recv(4096)
                elif self._drain(source):
                    busy = True
            if pending:
                busy = True
                self._write_queued()
            if self._opened is not None and time.monotonic() - self._opened >= chunk_time_s:
                self._close_chunk()
        # what reached a socket before the stop is kept too; bounded, so that a
        # publisher still running cannot hold up the close
        for socket, _ in polled[1:]:
            self._drain(socket, socket.rcvhwm or 100_000)  # 0: no high-water mark
        self._collect()
        self._writer.write_metadata(META_RECORDER, self.stats.to_metadata())
        self._writer.close()

    def _until_chunk_due(self) -> int:
        """Milliseconds until the open chunk must close (-1: none is open)."""
        if self._opened is None:
            return -1
        due = self._opened + self.options.chunk_time_s - time.monotonic()
        return max(0, math.ceil(due * 1000))

    def _write_queued(self) -> None:
        """Write up to a batch of what producers queued; metadata goes between chunks."""
        pending = self._queue
        for _ in range(_BATCH):
            if not pending:
                return
            item = pending.popleft()
            if type(item) is tuple:
                frames, direction, log_time_ns = item
                self._write(frames, direction, log_time_ns, len(pending))
                continue
            if self._opened is not None:
                self._close_chunk()
            if isinstance(item, _Stop):
                self._stopping = True
                return
            item(self._writer)

    def _close_chunk(self) -> None:
        """Close the open chunk and hand it to the OS (``MCAPWriter.flush``)."""
        self._writer.flush()
        self.stats.chunks += 1
        self._opened, self._size = None, 0

    def _write(self, frames: Sequence[Any], direction: str, log_time_ns: int,
               backlog: int) -> None:
        """Write one queued message (``backlog``: messages waiting behind it) and its views."""
        topic_frame = frames[0]
        if type(topic_frame) is not bytes:
            topic_frame = as_bytes(topic_frame)
        channels = self._channels.get(direction)
        channel = None if channels is None else channels.get(topic_frame)
        if channel is None:
            channel = self._channel(topic_frame, direction)
        rest = frames[1:]
        try:
            data = self._pack(rest)
        except TypeError:  # numpy arrays (frames from ``encode``)
            data = pack_frames(rest)
        channel.log(data, log_time_ns)
        channel.count += 1
        seq = channel.seq(rest[0] if rest else b"")
        if seq is not None:
            last = channel.last_seq
            if last is not None and seq > last + 1:
                channel.gaps += seq - last - 1
            channel.last_seq = seq
        if channel.views:
            if backlog < VIEW_BACKLOG and backlog * len(data) < VIEW_BACKLOG_BYTES:
                self.stats.views += self._views.log(frames, log_time_ns)  # type: ignore[union-attr]
            else:
                self.stats.view_skips += 1
        if self._opened is None:
            self._opened = time.monotonic()
        self._size += len(data) + channel.overhead
        if self._size >= self._chunk_bytes:
            self._close_chunk()

    def _channel(self, topic_frame: bytes, direction: str) -> _Channel:
        topic = topic_frame.decode(errors="replace")
        # the public Channel constructor wants a schema for any encoding but JSON
        base = self._foxglove._create_channel(topic, message_encoding=MESSAGE_ENCODING,
                                              metadata={"direction": direction})
        channel = _Channel(base.log, topic,
                           self._views is not None and self._views.wants(topic))
        self._channels.setdefault(direction, {})[topic_frame] = channel
        self.stats.messages.setdefault(topic, 0)
        self.stats.seq_gaps.setdefault(topic, 0)
        return channel

    @property
    def written(self) -> int:
        """Bus messages written so far (read from any thread; exact once closed)."""
        return sum(channel.count for channels in list(self._channels.values())
                   for channel in list(channels.values()))

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> RecorderStats:
        """Write everything queued or waiting on the sockets, the counters and the summary.

        Raises:
            RuntimeError: the writer thread failed (e.g. the disk is full); the file is torn.
        """
        if not self._closed:
            self._queue.append(_STOP)
            self._wake()
            self._thread.join()
            with self._wake_lock:
                self._closed = True
                self._wake_in.close()
                self._wake_out.close()
            for socket in self._subs:
                socket.close()
            if self._zmq is not None:
                self._zmq.term()
        if self._error is not None:
            raise RuntimeError(f"the recorder's writer failed: {self._error!r}") from self._error
        return self.stats

    def _collect(self) -> None:
        """Per-channel counters into :attr:`stats` (topics in both directions add up)."""
        stats = self.stats
        stats.messages = {topic: 0 for topic in stats.messages}
        stats.seq_gaps = {}
        for channel in (c for channels in self._channels.values() for c in channels.values()):
            stats.messages[channel.topic] += channel.count
            if channel.gaps:
                stats.seq_gaps[channel.topic] = stats.seq_gaps.get(channel.topic, 0) + channel.gaps

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Channel:
    """One MCAP channel (a topic in one direction) and its counters."""

    __slots__ = ("count", "gaps", "head", "last_seq", "log", "overhead", "prefix", "seq_at",
                 "topic", "views")

    def __init__(self, log: Callable[[bytes, int], None], topic: str, views: bool) -> None:
        self.log = log
        self.topic = topic
        self.views = views
        self.count = 0
        self.gaps = 0
        self.last_seq: int | None = None
        self.overhead = len(topic) + _MESSAGE_OVERHEAD
        # the header after its map marker, up to the seq value, as the reference encoder writes
        self.prefix = msgpack.packb("v") + msgpack.packb(1) + msgpack.packb("topic") \
            + msgpack.packb(topic) + msgpack.packb("seq")
        self.seq_at = 1 + len(self.prefix)
        # the map marker and prefix of the last header read by the prefix (reference: 5 keys)
        self.head = b"\x85" + self.prefix

    def seq(self, header: Any) -> int | None:
        """The header's ``seq`` (None when unreadable)."""
        data: bytes = header if type(header) is bytes else as_bytes(header)
        if data.startswith(self.prefix, 1) and data[0] & 0xF0 == 0x80:
            at = self.seq_at
            self.head = data[:at]
            try:  # any unsigned msgpack integer (read_uint's reading, without its call)
                b = data[at]
                return b if b < 0x80 else _UINT_READERS[b](data, at + 1)[0]
            except (IndexError, KeyError, struct.error):
                pass
        return _seq(data)


def _seq(header: bytes) -> int | None:
    """``seq`` of any header layout (None when not a readable map or no int ``seq``)."""
    try:
        seq = msgpack.unpackb(header, raw=False, strict_map_key=False).get("seq")
    except (AttributeError, *UNPACK_ERRORS):
        return None
    return seq if type(seq) is int else None
