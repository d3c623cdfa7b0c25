"""Read a flightai recording back: metadata, attachments and messages as flightai ``Message``s."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from mcap.exceptions import EndOfFile, McapError
from mcap.records import Attachment, Channel, Metadata
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader

from flightai.bus.wire import MAX_OUTBOUND_HEADER_BYTES, Message, decode
from hil.record.recorder import MESSAGE_ENCODING


@dataclass(frozen=True)
class Recorded:
    """One recorded bus message.

    Attributes:
        topic: the channel's topic (frame 0 on the wire).
        direction: ``from_runtime`` (published by it) or ``to_runtime`` (sent to it).
        log_time_ns: wall time the recorder received it.
        frames: the multipart message exactly as on the wire, topic frame first.
    """

    topic: str
    direction: str
    log_time_ns: int
    frames: tuple[bytes, ...]

    def decode(self) -> Message:
        """The message, decoded and checked by flightai's wire decoder."""
        return decode(self.frames, max_message_bytes=1 << 30,
                      max_header_bytes=MAX_OUTBOUND_HEADER_BYTES)


def unpack_frames(topic: str, data: bytes) -> tuple[bytes, ...]:
    """The wire frames of a recorded message (inverse of ``recorder.pack_frames``)."""
    frames = msgpack.unpackb(data, raw=False)
    if type(frames) is not list or not all(type(f) is bytes for f in frames):
        raise ValueError(f"{topic}: recorded data is not a msgpack array of bin frames")
    return (topic.encode(), *frames)


class Recording:
    """Everything in a recording file, read in file order with every CRC checked.

    ``messages`` are the bus messages; the Foxglove views beside them are skipped.

    Args:
        path: an MCAP file written by :class:`~hil.record.recorder.Recorder`.

    Raises:
        mcap.exceptions.McapError or ValueError: a torn or corrupt file.
    """

    def __init__(self, path: str | Path) -> None:
        self.metadata: dict[str, dict[str, str]] = {}
        self.attachments: dict[str, bytes] = {}
        self.messages: list[Recorded] = []
        self.channels: dict[int, Channel] = {}
        with open(path, "rb") as f:
            for record in StreamReader(f, validate_crcs=True).records:
                self._take(record)

    def _take(self, record: Any) -> None:
        if isinstance(record, Channel):
            self.channels[record.id] = record
        elif isinstance(record, McapMessage):
            channel = self.channels.get(record.channel_id)
            if channel is None:
                raise ValueError(f"a message on channel {record.channel_id}, "
                                 "which no channel record declares")
            if channel.message_encoding != MESSAGE_ENCODING:  # a Foxglove view
                return
            self.messages.append(Recorded(
                channel.topic, channel.metadata.get("direction", ""), record.log_time,
                unpack_frames(channel.topic, record.data)))
        elif isinstance(record, Metadata):
            self.metadata[record.name] = dict(record.metadata)
        elif isinstance(record, Attachment):
            self.attachments[record.name] = bytes(record.data)

    def topics(self) -> set[str]:
        """Every bus topic recorded (the views' ``/view/...`` topics left out)."""
        return {c.topic for c in self.channels.values() if c.message_encoding == MESSAGE_ENCODING}

    def iter_decoded(self, prefix: str = "") -> Iterator[Message]:
        """The messages whose topic starts with ``prefix``, decoded, in recorded order."""
        for recorded in self.messages:
            if recorded.topic.startswith(prefix):
                yield recorded.decode()


class RecordingError(ValueError):
    """A recording that cannot be opened (missing, unreadable, torn or corrupt); names the file."""


def open_recording(path: str | Path) -> Recording:
    """The :class:`Recording` at ``path``, or a :class:`RecordingError` naming it and the cause."""
    try:
        return Recording(path)
    except (EndOfFile, struct.error) as exc:  # the mcap reader ran out of bytes
        raise RecordingError(f"{path}: not a complete MCAP file (it ends inside a record; "
                             "`flightai hil recover` saves what a torn recording holds)") from exc
    except (OSError, ValueError, McapError) as exc:
        raise RecordingError(f"{path}: {exc or type(exc).__name__}") from exc
