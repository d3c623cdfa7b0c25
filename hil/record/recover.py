"""Salvage a recording torn by a kill (no data end, summary or footer).

The torn file is read record by record from the start. Every chunk whose
record is complete and whose CRC validates is kept, with the metadata and
attachments written between chunks; the torn tail (a partial record) is
dropped. The kept records are written again, in order, into a new file that
has a summary, statistics and indexes, so any MCAP reader opens it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mcap.exceptions import McapError
from mcap.records import (
    Attachment,
    Channel,
    Chunk,
    DataEnd,
    Header,
    McapRecord,
    Metadata,
    Schema,
)
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.writer import CompressionType, Writer

_READ_ERRORS = (McapError, EOFError, struct.error, ValueError, KeyError, IndexError, OSError)


class NotARecording(ValueError):
    """The file does not start with a complete MCAP magic and header."""


@dataclass
class RecoverReport:
    """What a recovery kept and lost.

    Attributes:
        chunks: chunks kept (complete, CRC valid).
        messages: messages kept.
        bad_chunks: complete chunks dropped because their CRC or content is wrong.
        metadata: metadata records kept; attachments likewise.
        torn_bytes: bytes at the end that did not form a complete record.
        complete: True when the input had its footer (nothing was torn).
        error: why reading stopped, when it stopped early.
    """

    chunks: int = 0
    messages: int = 0
    bad_chunks: int = 0
    metadata: int = 0
    attachments: int = 0
    torn_bytes: int = 0
    complete: bool = False
    error: str = ""
    topics: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a person."""
        state = "complete file" if self.complete else f"torn: {self.torn_bytes} bytes lost"
        return (f"kept {self.messages} messages in {self.chunks} chunks, {self.metadata} "
                f"metadata, {self.attachments} attachments; {self.bad_chunks} bad chunks "
                f"dropped; {state}" + (f" ({self.error})" if self.error else ""))


class _Copier:
    """Writes salvaged records into a fresh file, mapping schema and channel ids."""

    def __init__(self, writer: Writer, report: RecoverReport) -> None:
        self.writer = writer
        self.report = report
        self.schemas: dict[int, int] = {}
        self.channels: dict[int, int] = {}
        self.topics: dict[int, str] = {}

    def take(self, record: Any) -> None:
        if isinstance(record, Schema) and record.id not in self.schemas:
            self.schemas[record.id] = self.writer.register_schema(
                record.name, record.encoding, record.data)
        elif isinstance(record, Channel) and record.id not in self.channels:
            self.channels[record.id] = self.writer.register_channel(
                record.topic, record.message_encoding, self.schemas.get(record.schema_id, 0),
                dict(record.metadata))
            self.topics[record.id] = record.topic
        elif isinstance(record, McapMessage):
            self.writer.add_message(self.channels[record.channel_id], record.log_time,
                                    record.data, record.publish_time, record.sequence)
            topic = self.topics[record.channel_id]
            self.report.topics[topic] = self.report.topics.get(topic, 0) + 1
            self.report.messages += 1
        elif isinstance(record, Metadata):
            self.writer.add_metadata(record.name, dict(record.metadata))
            self.report.metadata += 1
        elif isinstance(record, Attachment):
            self.writer.add_attachment(record.log_time, record.create_time, record.name,
                                       record.media_type, record.data)
            self.report.attachments += 1


def recover(torn: str | Path, fixed: str | Path) -> RecoverReport:
    """Copy every complete, valid chunk (and metadata, attachments) of ``torn`` into ``fixed``.

    Raises:
        NotARecording: ``torn`` does not start with a complete MCAP magic and header
            (nothing to salvage, e.g. a recorder killed before its first write).
    """
    report = RecoverReport()
    size = Path(torn).stat().st_size
    with open(torn, "rb") as source:
        records = StreamReader(source, emit_chunks=True, validate_crcs=False).records
        try:
            header = next(records)
        except (*_READ_ERRORS, StopIteration) as exc:
            raise NotARecording(f"{torn}: no complete MCAP header in its {size} bytes") from exc
        with open(fixed, "wb") as target:
            return _salvage(source, target, records, header, report, size)


def _salvage(source: BinaryIO, target: BinaryIO, records: Iterator[McapRecord],
             header: McapRecord, report: RecoverReport, size: int) -> RecoverReport:
    writer = Writer(target, compression=CompressionType.NONE, enable_data_crcs=True)
    writer.start(**_header_args(header))
    copier = _Copier(writer, report)
    good_end = source.tell()
    try:
        for record in records:
            if isinstance(record, DataEnd):  # what follows is the old summary
                break
            if isinstance(record, Chunk):
                try:
                    inner = breakup_chunk(record, validate_crc=True)
                except _READ_ERRORS:
                    report.bad_chunks += 1
                    continue
                for item in inner:
                    copier.take(item)
                report.chunks += 1
            else:
                copier.take(record)
            good_end = source.tell()
        report.complete = True
    except _READ_ERRORS as exc:
        report.error = f"{type(exc).__name__}: {exc}"[:200]
    if not report.complete:
        report.torn_bytes = size - good_end
    writer.finish()  # type: ignore[no-untyped-call]
    return report


def _header_args(header: Any) -> dict[str, str]:
    if isinstance(header, Header):
        return {"profile": header.profile, "library": header.library}
    return {}
