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
import struct
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

def _little_endian(name: str) -> np.dtype[Any]:
    """The little-endian dtype ``name``: numpy's own instance when that is the native one.

    ``newbyteorder("<")`` makes a new, equal instance even on a little-endian host;
    received arrays then carry it, and checks by identity (the output fast path)
    would miss. Numpy's canonical instance keeps ``is`` true.
    """
    native: np.dtype[Any] = np.dtype(name)
    wire = native.newbyteorder("<")
    return native if wire == native else wire


#: dtype name on the wire -> numpy dtype (always little-endian).
WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    name: _little_endian(name) for name in (
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool")
}
#: What msgpack raises on hostile bytes (ExtraData, FormatError, StackError are ValueErrors).
UNPACK_ERRORS = (ValueError, msgpack.exceptions.UnpackException)
_HEADER_KEYS = frozenset({"v", "topic", "seq", "t_ns", "arrays"})
_DESCRIPTOR_KEYS = frozenset({"name", "dtype", "shape"})
_MAX_DIM = 2**31


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


def _unpack_header(data: bytes | memoryview, max_header_bytes: int) -> Any:
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
    # msgpack gives exact ints and bools only: ``type is int`` leaves bool out
    if type(value) is not int or not low <= value <= high:
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
    total = sum(map(len, frames))
    if total > max_message_bytes:
        raise WireError(Reason.OVERSIZED, f"{total} bytes > {max_message_bytes}")
    if len(frames[1]) > max_header_bytes:
        raise WireError(Reason.OVERSIZED, f"header {len(frames[1])} bytes > {max_header_bytes}")
    if len(frames[0]) > MAX_TOPIC_BYTES:
        raise WireError(Reason.MALFORMED, "topic frame too long")
    header = _unpack_header(frames[1], max_header_bytes)
    if type(header) is not dict:
        raise WireError(Reason.MALFORMED, "header is not a map")
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise WireError(Reason.BAD_VERSION, f"version {version!r}, expected {PROTOCOL_VERSION}")
    topic = header.get("topic")
    if type(topic) is not str or topic.encode() != frames[0]:
        raise WireError(Reason.MALFORMED, "header 'topic' differs from the topic frame")
    seq = _int_field(header, "seq", 0, UINT64_MAX)
    t_ns = _int_field(header, "t_ns", INT64_MIN, INT64_MAX)
    descriptors = header.get("arrays")
    if type(descriptors) is not list:
        raise WireError(Reason.MALFORMED, "header 'arrays' must be an array")
    if len(descriptors) != len(frames) - 2:
        raise WireError(Reason.BAD_FRAME_COUNT,
                        f"{len(descriptors)} arrays declared, {len(frames) - 2} frames")
    arrays = tuple([_array(d, frames[i]) for i, d in enumerate(descriptors, 2)])
    if len(header) == 5:
        return Message(topic, seq, t_ns, arrays)
    extra = {k: v for k, v in header.items() if k not in _HEADER_KEYS}
    return Message(topic, seq, t_ns, arrays, extra)


def _array(descriptor: Any, frame: bytes | memoryview) -> tuple[str, npt.NDArray[Any]]:
    if type(descriptor) is not dict or descriptor.keys() != _DESCRIPTOR_KEYS:
        raise WireError(Reason.MALFORMED, "array descriptor must be {name, dtype, shape}")
    name, dtype_name, shape = descriptor["name"], descriptor["dtype"], descriptor["shape"]
    if type(name) is not str:
        raise WireError(Reason.MALFORMED, "array 'name' must be a string")
    dtype = WIRE_DTYPES.get(dtype_name) if type(dtype_name) is str else None
    if dtype is None:
        raise WireError(Reason.BAD_DTYPE, f"array {name!r}: dtype {dtype_name!r}")
    if type(shape) is not list or len(shape) > MAX_NDIM:
        raise WireError(Reason.BAD_SHAPE, f"array {name!r}: shape {shape!r}")
    for d in shape:
        if type(d) is not int or not 0 <= d <= _MAX_DIM:
            raise WireError(Reason.BAD_SHAPE, f"array {name!r}: shape {shape!r}")
    expected = math.prod(shape) * dtype.itemsize
    if len(frame) != expected:
        raise WireError(Reason.BAD_FRAME_LENGTH,
                        f"array {name!r}: {len(frame)} bytes, shape and dtype need {expected}")
    try:
        array = np.frombuffer(frame, dtype=dtype)
        if len(shape) != 1:
            array = array.reshape(shape)
    except ValueError as exc:  # e.g. a zero-size shape whose dims overflow numpy's limits
        raise WireError(Reason.BAD_SHAPE, f"array {name!r}: shape {shape!r}: {exc}") from exc
    array.flags.writeable = False
    return name, array


# -- pre-packed headers ---------------------------------------------------------------------------
#
# Every header the reference encoder writes is, byte for byte,
#     map header, "v" 1, "topic" <topic>, "seq" <seq>, "t_ns" <t_ns>, "arrays" [...], extras
# so for one topic and one array layout everything but the two integers can be packed once.
# Senders use it to skip building and packing a dict per message; the sensors socket uses it
# to recognise the headers of a layout it has already checked, byte for byte.

T_NS_KEY = b"\xa4t_ns"


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


def map_header(pairs: int) -> bytes:
    """The msgpack map header for ``pairs`` key/value pairs (as msgpack's packer writes it)."""
    if pairs <= 15:
        return bytes((0x80 | pairs,))
    if pairs <= 0xFFFF:
        return b"\xde" + pairs.to_bytes(2, "big")
    return b"\xdf" + pairs.to_bytes(4, "big")


def header_prefix(topic: str, extra_keys: int = 0) -> bytes:
    """The header bytes before the ``seq`` value, for a header with ``extra_keys`` extra keys."""
    return (map_header(5 + extra_keys) + _pack("v") + _pack(PROTOCOL_VERSION) + _pack("topic")
            + _pack(topic) + _pack("seq"))


def arrays_part(descriptors: Sequence[Mapping[str, Any]]) -> bytes:
    """The header bytes of the ``arrays`` key and value (after ``t_ns``, before extra keys)."""
    return _pack("arrays") + _pack(list(descriptors))


def descriptor(name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    """The ``arrays`` entry :func:`encode` writes for ``array``."""
    return {"name": name, "dtype": array.dtype.name, "shape": list(np.shape(array))}


def pack_header(prefix: bytes, seq: int, t_ns: int, suffix: bytes,
                pack: Any = _pack) -> bytes:
    """``prefix + seq + "t_ns" + t_ns + suffix``: a whole header from its pre-packed parts."""
    return b"".join((prefix, pack(seq), T_NS_KEY, pack(t_ns), suffix))


def is_wire_ready(array: npt.NDArray[Any]) -> bool:
    """True when :func:`encode` would send ``array``'s own buffer (C order, little-endian)."""
    return (type(array) is np.ndarray and array.dtype == WIRE_DTYPES.get(array.dtype.name)
            and array.flags.c_contiguous)


#: msgpack integer marker byte -> (struct of the value after it, bytes with the marker)
UINT_FORMATS = {0xCC: (struct.Struct(">B"), 2), 0xCD: (struct.Struct(">H"), 3),
                0xCE: (struct.Struct(">I"), 5), 0xCF: (struct.Struct(">Q"), 9)}
INT_FORMATS = {**UINT_FORMATS, 0xD0: (struct.Struct(">b"), 2), 0xD1: (struct.Struct(">h"), 3),
               0xD2: (struct.Struct(">i"), 5), 0xD3: (struct.Struct(">q"), 9)}


def read_uint(buf: bytes, at: int) -> tuple[int, int] | None:
    """The msgpack unsigned integer (any unsigned encoding) at ``buf[at]`` and the index after.

    None when ``buf[at]`` starts anything else (a signed encoding included) or is cut short.
    """
    if at >= len(buf):
        return None
    b = buf[at]
    if b < 0x80:
        return b, at + 1
    fmt = UINT_FORMATS.get(b)
    if fmt is None or at + fmt[1] > len(buf):
        return None
    return fmt[0].unpack_from(buf, at + 1)[0], at + fmt[1]


def read_int64(buf: bytes, at: int) -> tuple[int, int] | None:
    """The msgpack integer at ``buf[at]`` if it is in int64 range, and the index after; or None."""
    if at >= len(buf):
        return None
    b = buf[at]
    if b < 0x80:
        return b, at + 1
    if b >= 0xE0:
        return b - 0x100, at + 1
    fmt = INT_FORMATS.get(b)
    if fmt is None or at + fmt[1] > len(buf):
        return None
    value: int = fmt[0].unpack_from(buf, at + 1)[0]
    return (value, at + fmt[1]) if value <= INT64_MAX else None
