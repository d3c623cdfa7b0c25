"""The wire format: one multipart message = topic frame, msgpack header, array frames.

Frame 0 is the topic in UTF-8 (so SUB sockets can filter on it), frame 1 a
msgpack map (the header), then one raw frame per array: C order,
little-endian, exactly ``prod(shape) * itemsize`` bytes. ``docs/icd.md`` is the
contract; this module is its reference implementation.

Decoding never trusts the peer: the total size is capped before anything is
parsed, the header is parsed with explicit msgpack limits, and every field is
type-checked, so a hostile message costs neither memory nor time and is
refused with a :class:`Reason`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4096
#: Headers the runtime itself sends (health grows with the task count) may be this large.
MAX_OUTBOUND_HEADER_BYTES = 256 * 1024
MAX_ARRAYS = 16
MAX_NDIM = 8
MAX_TOPIC_BYTES = 128
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: dtype name on the wire -> numpy dtype (always little-endian).
WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<") for name in (
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool")
}
#: What msgpack raises on hostile bytes (ExtraData, FormatError, StackError are ValueErrors).
UNPACK_ERRORS = (ValueError, msgpack.exceptions.UnpackException)
_HEADER_KEYS = frozenset({"v", "topic", "seq", "t_ns", "arrays"})


class Reason(enum.Enum):
    """Why a message was refused; the value is the reason code on the wire and in telemetry."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    BAD_VERSION = "bad_version"
    BAD_FRAME_COUNT = "bad_frame_count"
    BAD_FRAME_LENGTH = "bad_frame_length"
    BAD_DTYPE = "bad_dtype"
    BAD_SHAPE = "bad_shape"
    UNKNOWN_TOPIC = "unknown_topic"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    STALE = "stale"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNAUTHORISED = "unauthorised"
    OVERFLOW = "overflow"


class WireError(Exception):
    """A message that does not follow the wire format; carries the :class:`Reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {detail}")


@dataclass(frozen=True)
class Message:
    """A decoded message.

    Attributes:
        topic: the topic (frame 0, equal to the header's ``topic``).
        seq: the sender's sequence number on this topic (uint64).
        t_ns: logical time in integer nanoseconds (int64).
        arrays: (name, array) in header order; arrays are read-only views.
        fields: every other header key, for message kinds that carry more.
    """

    topic: str
    seq: int
    t_ns: int
    arrays: tuple[tuple[str, npt.NDArray[Any]], ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


def encode(topic: str, seq: int, t_ns: int,
           arrays: Sequence[tuple[str, npt.NDArray[Any]]] = (),
           fields: Mapping[str, Any] | None = None,
           packer: msgpack.Packer | None = None) -> list[Any]:
    """Build the frames of one message (arrays are not copied when already C-ordered LE).

    Args:
        topic: message topic.
        seq: sequence number, 0..2**64-1.
        t_ns: logical time, integer ns.
        arrays: named arrays in the order their frames follow.
        fields: extra header keys (must not clash with the standard ones).
        packer: a reused ``msgpack.Packer`` (saves ~30 % per header).
    """
    descriptors = []
    frames: list[Any] = []
    for name, array in arrays:
        wire = WIRE_DTYPES[array.dtype.name]
        data = np.asarray(array, dtype=wire, order="C")  # keeps 0-d arrays 0-d
        descriptors.append({"name": name, "dtype": array.dtype.name, "shape": list(data.shape)})
        frames.append(data)
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "topic": topic, "seq": seq, "t_ns": t_ns,
                              "arrays": descriptors}
    if fields:
        header.update(fields)
    packed = (packer or msgpack.Packer()).pack(header)
    return [topic.encode(), packed, *frames]


def _unpack_header(data: bytes, max_header_bytes: int) -> Any:
    try:
        return msgpack.unpackb(
            data, max_str_len=max_header_bytes, max_bin_len=max_header_bytes,
            max_array_len=256, max_map_len=64 if max_header_bytes <= MAX_HEADER_BYTES else 4096,
            max_ext_len=0, strict_map_key=True, raw=False, use_list=True)
    except UNPACK_ERRORS as exc:
        raise WireError(Reason.MALFORMED, f"header is not valid msgpack ({type(exc).__name__})") \
            from exc


def _int_field(header: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(Reason.MALFORMED, f"header {key!r} must be an integer in [{low}, {high}]")
    return value


def decode(frames: Sequence[bytes | memoryview], max_message_bytes: int,
           max_header_bytes: int = MAX_HEADER_BYTES) -> Message:
    """Decode and check one message without trusting any of it.

    Args:
        frames: the multipart message as received.
        max_message_bytes: cap on the sum of all frame lengths, checked first.
        max_header_bytes: cap on the header; :data:`MAX_HEADER_BYTES` for messages to
            the runtime, :data:`MAX_OUTBOUND_HEADER_BYTES` for its health messages.

    Raises:
        WireError: with the reason the message is refused.
    """
    if len(frames) < 2 or len(frames) > MAX_ARRAYS + 2:
        raise WireError(Reason.BAD_FRAME_COUNT, f"{len(frames)} frames")
    total = sum(len(f) for f in frames)
    if total > max_message_bytes:
        raise WireError(Reason.OVERSIZED, f"{total} bytes > {max_message_bytes}")
    if len(frames[1]) > max_header_bytes:
        raise WireError(Reason.OVERSIZED, f"header {len(frames[1])} bytes > {max_header_bytes}")
    if len(frames[0]) > MAX_TOPIC_BYTES:
        raise WireError(Reason.MALFORMED, "topic frame too long")
    header = _unpack_header(bytes(frames[1]), max_header_bytes)
    if not isinstance(header, dict):
        raise WireError(Reason.MALFORMED, "header is not a map")
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise WireError(Reason.BAD_VERSION, f"version {version!r}, expected {PROTOCOL_VERSION}")
    topic = header.get("topic")
    if not isinstance(topic, str) or topic.encode() != bytes(frames[0]):
        raise WireError(Reason.MALFORMED, "header 'topic' differs from the topic frame")
    seq = _int_field(header, "seq", 0, UINT64_MAX)
    t_ns = _int_field(header, "t_ns", INT64_MIN, INT64_MAX)
    descriptors = header.get("arrays")
    if not isinstance(descriptors, list):
        raise WireError(Reason.MALFORMED, "header 'arrays' must be an array")
    if len(descriptors) != len(frames) - 2:
        raise WireError(Reason.BAD_FRAME_COUNT,
                        f"{len(descriptors)} arrays declared, {len(frames) - 2} frames")
    arrays = tuple(_array(d, frames[i + 2]) for i, d in enumerate(descriptors))
    extra = {k: v for k, v in header.items() if k not in _HEADER_KEYS}
    return Message(topic, seq, t_ns, arrays, extra)


def _array(descriptor: Any, frame: bytes | memoryview) -> tuple[str, npt.NDArray[Any]]:
    if not isinstance(descriptor, dict) or set(descriptor) != {"name", "dtype", "shape"}:
        raise WireError(Reason.MALFORMED, "array descriptor must be {name, dtype, shape}")
    name, dtype_name, shape = descriptor["name"], descriptor["dtype"], descriptor["shape"]
    if not isinstance(name, str):
        raise WireError(Reason.MALFORMED, "array 'name' must be a string")
    dtype = WIRE_DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise WireError(Reason.BAD_DTYPE, f"array {name!r}: dtype {dtype_name!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 2**31 for d in shape):
        raise WireError(Reason.BAD_SHAPE, f"array {name!r}: shape {shape!r}")
    expected = math.prod(shape) * dtype.itemsize
    if len(frame) != expected:
        raise WireError(Reason.BAD_FRAME_LENGTH,
                        f"array {name!r}: {len(frame)} bytes, shape and dtype need {expected}")
    try:
        array = np.frombuffer(frame, dtype=dtype).reshape(shape)
    except ValueError as exc:  # e.g. a zero-size shape whose dims overflow numpy's limits
        raise WireError(Reason.BAD_SHAPE, f"array {name!r}: shape {shape!r}: {exc}") from exc
    array.flags.writeable = False
    return name, array
