"""Property tests of the bus wire contract (docs/icd.md).

* ``wire.decode`` round-trips whatever ``wire.encode`` builds, bit for bit;
* one mutation of a valid message is refused with the reason the ICD names;
* ``InboundChecks`` counts every sensor message exactly once, by reason;
* ``CommandProcessor`` answers anything with a well-formed acknowledgement and
  never acts twice on one sequence number.

Defects these tests found are kept at the end as regression tests.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flightai.bus.commands import COMMANDS, CommandProcessor, CommandReason
from flightai.bus.inbound import TICK_TOPIC, InboundChecks
from flightai.bus.outbound import BusSink
from flightai.bus.wire import (
    INT64_MAX,
    INT64_MIN,
    MAX_ARRAYS,
    MAX_HEADER_BYTES,
    MAX_NDIM,
    MAX_OUTBOUND_HEADER_BYTES,
    MAX_TOPIC_BYTES,
    PROTOCOL_VERSION,
    UINT64_MAX,
    WIRE_DTYPES,
    Reason,
    WireError,
    decode,
    encode,
)
from flightai.config.schema import CommandClass, SignalSpec
from flightai.sched.health import Health, Mode, TaskHealth

PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BIG = 1 << 30  # max_message_bytes where the size cap is not under test
STANDARD_KEYS = frozenset({"v", "topic", "seq", "t_ns", "arrays"})
DESCRIPTOR_KEYS = ("name", "dtype", "shape")
TOPIC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"

# -- strategies ---------------------------------------------------------------------------------

topics = st.text(TOPIC_CHARS, min_size=1, max_size=40)
dtype_names = st.sampled_from(sorted(WIRE_DTYPES))
# ndim 0 is left out of the round trip: encode sends a 0-d array as shape [1] (see the
# test_zero_dim_arrays_keep_their_shape); decoding shape [] is tested on its own.
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)
scalars = (st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX)
           | st.floats(allow_nan=False) | st.text(max_size=12) | st.binary(max_size=12))
field_values = scalars | st.lists(scalars, max_size=3)
extra_fields = st.dictionaries(st.text(max_size=10).filter(lambda k: k not in STANDARD_KEYS),
                               field_values, max_size=4)
# Values of the wrong type for an integer field (floats include NaN, inf, 2**64 and beyond).
not_ints = (st.floats() | st.booleans() | st.text(max_size=8) | st.none()
            | st.binary(max_size=4) | st.lists(st.integers(0, 3), max_size=2)
            | st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
not_strs = (st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX) | st.floats()
            | st.binary(max_size=8) | st.lists(st.text(max_size=3), max_size=2)
            | st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
not_maps = (st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX) | st.floats()
            | st.text(max_size=8) | st.binary(max_size=8) | st.lists(scalars, max_size=3))
not_lists = (st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX) | st.floats()
             | st.text(max_size=8) | st.binary(max_size=8)
             | st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))


@st.composite
def random_arrays(draw: st.DrawFn) -> np.ndarray:
    """Any wire dtype and shape; contents from Hypothesis (NaN, inf) or raw bit patterns."""
    dtype = WIRE_DTYPES[draw(dtype_names)]
    shape = draw(shapes)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes <= 256 and draw(st.booleans()):
        # every bit pattern: NaN payloads, signalling NaNs, bool bytes other than 0 and 1
        raw = draw(st.binary(min_size=nbytes, max_size=nbytes))
        return np.frombuffer(raw, dtype).reshape(shape)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def cheap_arrays(draw: st.DrawFn) -> np.ndarray:
    """Any wire dtype and shape, fixed contents (for tests where contents do not matter)."""
    dtype = WIRE_DTYPES[draw(dtype_names)]
    shape = draw(shapes)
    return np.arange(math.prod(shape)).astype(dtype).reshape(shape)


@st.composite
def messages(draw: st.DrawFn, min_arrays: int = 0,
             contents: Callable[[], st.SearchStrategy[np.ndarray]] = random_arrays,
             ) -> dict[str, Any]:
    """Keyword arguments of a valid :func:`encode` call."""
    arrays = draw(st.lists(st.tuples(st.text(max_size=8), contents()),
                           min_size=min_arrays, max_size=4))
    return {"topic": draw(topics), "seq": draw(st.integers(0, UINT64_MAX)),
            "t_ns": draw(st.integers(INT64_MIN, INT64_MAX)), "arrays": arrays,
            "fields": draw(extra_fields)}


def wire(frames: list[Any]) -> list[bytes]:
    """The frames as they arrive: bytes (what ZeroMQ sends from each buffer)."""
    return [f.tobytes() if isinstance(f, np.ndarray) else bytes(f) for f in frames]


def wire_bytes(array: np.ndarray) -> bytes:
    """What the ICD says goes on the wire for ``array``: C order, little-endian."""
    return np.ascontiguousarray(array, dtype=WIRE_DTYPES[array.dtype.name]).tobytes()


# -- round trip ---------------------------------------------------------------------------------


@PROPERTY
@given(messages())
def test_encode_then_decode_round_trips_bit_for_bit(m: dict[str, Any]) -> None:
    decoded = decode(wire(encode(**m)), BIG)
    assert (decoded.topic, decoded.seq, decoded.t_ns) == (m["topic"], m["seq"], m["t_ns"])
    assert dict(decoded.fields) == m["fields"]
    assert len(decoded.arrays) == len(m["arrays"])
    for (name, sent), (got_name, got) in zip(m["arrays"], decoded.arrays, strict=True):
        assert got_name == name
        assert got.dtype == WIRE_DTYPES[sent.dtype.name]
        assert got.shape == sent.shape
        assert got.tobytes() == wire_bytes(sent)
        assert not got.flags.writeable


@PROPERTY
@given(random_arrays(), st.booleans(), st.booleans())
def test_any_layout_or_byte_order_is_sent_little_endian_c_order(
        array: np.ndarray, swap: bool, transpose: bool) -> None:
    if swap:
        array = array.astype(array.dtype.newbyteorder(">"))
    if transpose:
        array = array.T  # Fortran order for ndim >= 2: encode must make it C order
    frames = wire(encode("s", 0, 0, [("a", array)]))
    _, got = decode(frames, BIG).arrays[0]
    assert frames[2] == np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"),
                                                           copy=False).tobytes()
    assert got.dtype.byteorder in "<|=" and got.shape == array.shape
    assert np.array_equal(got, array, equal_nan=got.dtype.kind == "f")


# -- single mutations ---------------------------------------------------------------------------

Frames = list[bytes]
Mutation = Callable[[st.DataObject, dict[str, Any], Frames], tuple[Frames, int, Reason]]


def _repack(frames: Frames, header: Any) -> Frames:
    return [frames[0], msgpack.packb(header), *frames[2:]]


def _set_or_delete(data: st.DataObject, header: dict[str, Any], key: str,
                   values: st.SearchStrategy[Any]) -> None:
    if data.draw(st.booleans(), label=f"delete {key}"):
        del header[key]
    else:
        header[key] = data.draw(values, label=key)


def _header_kind(reason: Reason, change: Callable[[st.DataObject, dict[str, Any]], None],
                 ) -> Mutation:
    def mutate(data: st.DataObject, header: dict[str, Any], frames: Frames
               ) -> tuple[Frames, int, Reason]:
        change(data, header)
        return _repack(frames, header), BIG, reason
    return mutate


def _array_kind(reason: Reason, change: Callable[[st.DataObject, dict[str, Any]], Any]
                ) -> Mutation:
    """Change one array descriptor (``change`` returns the replacement descriptor)."""
    def mutate(data: st.DataObject, header: dict[str, Any], frames: Frames
               ) -> tuple[Frames, int, Reason]:
        i = data.draw(st.integers(0, len(header["arrays"]) - 1), label="array")
        header["arrays"][i] = change(data, header["arrays"][i])
        return _repack(frames, header), BIG, reason
    return mutate


def _version(data: st.DataObject, header: dict[str, Any]) -> None:
    # v == 1 in Python (True, 1.0) is accepted: see test_header_version_must_be_the_integer_1
    _set_or_delete(data, header, "v", (st.integers(INT64_MIN, UINT64_MAX) | not_ints)
                   .filter(lambda v: v != PROTOCOL_VERSION))


def _topic_in_header(data: st.DataObject, header: dict[str, Any]) -> None:
    topic = header["topic"]
    _set_or_delete(data, header, "topic", (topics | st.text(max_size=8) | not_strs)
                   .filter(lambda t: t != topic))


def _seq(data: st.DataObject, header: dict[str, Any]) -> None:
    # integers above 2**64-1 cannot be packed; floats stand for them
    _set_or_delete(data, header, "seq", st.integers(INT64_MIN, -1) | not_ints)


def _t_ns(data: st.DataObject, header: dict[str, Any]) -> None:
    _set_or_delete(data, header, "t_ns", st.integers(INT64_MAX + 1, UINT64_MAX) | not_ints)


def _arrays_not_a_list(data: st.DataObject, header: dict[str, Any]) -> None:
    _set_or_delete(data, header, "arrays", not_lists)


def _ext_type(data: st.DataObject, header: dict[str, Any]) -> None:
    header["x-ext"] = data.draw(
        # an empty ext payload passes max_ext_len=0: see the ICD's limits
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(min_size=1, max_size=8))
        | st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)))


def _non_string_key(data: st.DataObject, header: dict[str, Any]) -> None:
    header[data.draw(st.integers(INT64_MIN, UINT64_MAX) | st.floats(allow_nan=False)
                     | st.none())] = 1


def _too_many_keys(data: st.DataObject, header: dict[str, Any]) -> None:
    extra = data.draw(st.integers(0, 10), label="keys past 64")
    i = 0
    while len(header) <= 64 + extra:
        header[f"pad{i}"] = i
        i += 1


def _oversized_header(data: st.DataObject, header: dict[str, Any]) -> None:
    size = MAX_HEADER_BYTES - len(msgpack.packb(header)) + data.draw(st.integers(1, 500))
    header["pad"] = "x" * size


def _topic_frame(data: st.DataObject, header: dict[str, Any], frames: Frames
                 ) -> tuple[Frames, int, Reason]:
    other = data.draw(st.binary(max_size=MAX_TOPIC_BYTES).filter(lambda b: b != frames[0]))
    return [other, *frames[1:]], BIG, Reason.MALFORMED


def _topic_too_long(data: st.DataObject, header: dict[str, Any], frames: Frames
                    ) -> tuple[Frames, int, Reason]:
    topic = data.draw(st.text(TOPIC_CHARS, min_size=MAX_TOPIC_BYTES + 1,
                              max_size=MAX_TOPIC_BYTES + 40))
    header["topic"] = topic  # consistent with frame 0, only too long
    return [topic.encode(), msgpack.packb(header), *frames[2:]], BIG, Reason.MALFORMED


def _not_a_map(data: st.DataObject, header: dict[str, Any], frames: Frames
               ) -> tuple[Frames, int, Reason]:
    return _repack(frames, data.draw(not_maps)), BIG, Reason.MALFORMED


def _truncated(data: st.DataObject, header: dict[str, Any], frames: Frames
               ) -> tuple[Frames, int, Reason]:
    cut = data.draw(st.integers(0, len(frames[1]) - 1))
    return [frames[0], frames[1][:cut], *frames[2:]], BIG, Reason.MALFORMED


def _trailing(data: st.DataObject, header: dict[str, Any], frames: Frames
              ) -> tuple[Frames, int, Reason]:
    junk = data.draw(st.binary(min_size=1, max_size=8))
    return [frames[0], frames[1] + junk, *frames[2:]], BIG, Reason.MALFORMED


def _junk(data: st.DataObject, header: dict[str, Any], frames: Frames
          ) -> tuple[Frames, int, Reason]:
    junk = data.draw(st.binary(max_size=64) | st.binary(max_size=63).map(b"\xc1".__add__))
    try:
        parsed = msgpack.unpackb(junk, strict_map_key=False)
    except Exception:  # anything msgpack refuses, decode refuses too
        parsed = None
    assume(not isinstance(parsed, dict))  # a junk map would be judged on its fields
    return [frames[0], junk, *frames[2:]], BIG, Reason.MALFORMED


def _message_oversized(data: st.DataObject, header: dict[str, Any], frames: Frames
                       ) -> tuple[Frames, int, Reason]:
    total = sum(len(f) for f in frames)
    return frames, data.draw(st.integers(0, total - 1), label="max_message_bytes"), \
        Reason.OVERSIZED


def _too_few_frames(data: st.DataObject, header: dict[str, Any], frames: Frames
                    ) -> tuple[Frames, int, Reason]:
    return frames[:data.draw(st.integers(0, 1))], BIG, Reason.BAD_FRAME_COUNT


def _frame_added(data: st.DataObject, header: dict[str, Any], frames: Frames
                 ) -> tuple[Frames, int, Reason]:
    return [*frames, data.draw(st.binary(max_size=16))], BIG, Reason.BAD_FRAME_COUNT


def _too_many_frames(data: st.DataObject, header: dict[str, Any], frames: Frames
                     ) -> tuple[Frames, int, Reason]:
    n = MAX_ARRAYS + 3 + data.draw(st.integers(0, 3)) - len(frames)
    return [*frames, *[b""] * n], BIG, Reason.BAD_FRAME_COUNT


def _frame_dropped(data: st.DataObject, header: dict[str, Any], frames: Frames
                   ) -> tuple[Frames, int, Reason]:
    i = 2 + data.draw(st.integers(0, len(frames) - 3))
    return frames[:i] + frames[i + 1:], BIG, Reason.BAD_FRAME_COUNT


def _descriptor_added(data: st.DataObject, header: dict[str, Any], frames: Frames
                      ) -> tuple[Frames, int, Reason]:
    header["arrays"].append({"name": "extra", "dtype": "uint8", "shape": [0]})
    return _repack(frames, header), BIG, Reason.BAD_FRAME_COUNT


def _frame_length(delta: int) -> Mutation:
    def mutate(data: st.DataObject, header: dict[str, Any], frames: Frames
               ) -> tuple[Frames, int, Reason]:
        candidates = [i for i in range(2, len(frames)) if len(frames[i]) + delta >= 0]
        if not candidates:  # every array is empty: one byte long instead
            return _frame_length(+1)(data, header, frames)
        i = data.draw(st.sampled_from(candidates), label="frame")
        frame = frames[i][:-1] if delta < 0 else frames[i] + b"\0"
        return [*frames[:i], frame, *frames[i + 1:]], BIG, Reason.BAD_FRAME_LENGTH
    return mutate


def _without_key(data: st.DataObject, d: dict[str, Any]) -> dict[str, Any]:
    key = data.draw(st.sampled_from(DESCRIPTOR_KEYS))
    return {k: v for k, v in d.items() if k != key}


def _with_extra_key(data: st.DataObject, d: dict[str, Any]) -> dict[str, Any]:
    key = data.draw(st.text(max_size=8).filter(lambda k: k not in DESCRIPTOR_KEYS))
    return {**d, key: data.draw(scalars)}


def _with(key: str, values: st.SearchStrategy[Any]
          ) -> Callable[[st.DataObject, dict[str, Any]], dict[str, Any]]:
    return lambda data, d: {**d, key: data.draw(values, label=key)}


def _shape_with_dim(dims: st.SearchStrategy[Any]
                    ) -> Callable[[st.DataObject, dict[str, Any]], dict[str, Any]]:
    def change(data: st.DataObject, d: dict[str, Any]) -> dict[str, Any]:
        shape = list(d["shape"])
        at = data.draw(st.integers(0, len(shape)), label="position")
        bad = data.draw(dims, label="dim")
        if at < len(shape) and data.draw(st.booleans(), label="replace"):
            shape[at] = bad
        else:
            shape.insert(at, bad)
        return {**d, "shape": shape}
    return change


unknown_dtypes = (st.sampled_from(["<f4", "f4", "float", "complex64", "Float32", "float32 ",
                                   "bfloat16", "object", "str", ""])
                  | st.text(max_size=12)).filter(lambda s: s not in WIRE_DTYPES)

# Mutations by group; Hypothesis picks the mutation within a group, then its values.
MUTATIONS: dict[str, dict[str, Mutation]] = {
    "header fields": {
        "version changed or missing": _header_kind(Reason.BAD_VERSION, _version),
        "header topic differs from frame 0": _header_kind(Reason.MALFORMED, _topic_in_header),
        "seq negative, non-integer or missing": _header_kind(Reason.MALFORMED, _seq),
        "t_ns out of int64, non-integer or missing": _header_kind(Reason.MALFORMED, _t_ns),
        "arrays not a list or missing": _header_kind(Reason.MALFORMED, _arrays_not_a_list),
    },
    "header encoding": {
        "frame 0 differs from header topic": _topic_frame,
        "topic over MAX_TOPIC_BYTES": _topic_too_long,
        "header not a map": _not_a_map,
        "header truncated": _truncated,
        "header with trailing bytes": _trailing,
        "header is junk": _junk,
        "header holds an extension type": _header_kind(Reason.MALFORMED, _ext_type),
        "header has a non-string key": _header_kind(Reason.MALFORMED, _non_string_key),
        "header has more than 64 keys": _header_kind(Reason.MALFORMED, _too_many_keys),
        "header over MAX_HEADER_BYTES": _header_kind(Reason.OVERSIZED, _oversized_header),
    },
    "frames": {
        "message over max_message_bytes": _message_oversized,
        "fewer than two frames": _too_few_frames,
        "one frame added": _frame_added,
        "more than MAX_ARRAYS + 2 frames": _too_many_frames,
        "one descriptor added": _descriptor_added,
        "one data frame dropped": _frame_dropped,
        "data frame one byte short": _frame_length(-1),
        "data frame one byte long": _frame_length(+1),
    },
    "descriptors": {
        "descriptor not a map": _array_kind(Reason.MALFORMED,
                                            lambda data, d: data.draw(not_maps)),
        "descriptor missing a key": _array_kind(Reason.MALFORMED, _without_key),
        "descriptor with an extra key": _array_kind(Reason.MALFORMED, _with_extra_key),
        "name not a string": _array_kind(Reason.MALFORMED, _with("name", not_strs)),
        "dtype unknown": _array_kind(Reason.BAD_DTYPE, _with("dtype", unknown_dtypes)),
        "dtype not a string": _array_kind(Reason.BAD_DTYPE, _with("dtype", not_strs)),
        "shape not a list": _array_kind(Reason.BAD_SHAPE, _with("shape", not_lists)),
        "shape with a negative dim": _array_kind(
            Reason.BAD_SHAPE, _shape_with_dim(st.integers(INT64_MIN, -1))),
        "shape with a non-integer dim": _array_kind(Reason.BAD_SHAPE,
                                                    _shape_with_dim(not_ints)),
        "shape with a dim over 2**31": _array_kind(
            Reason.BAD_SHAPE, _shape_with_dim(st.integers(2**31 + 1, UINT64_MAX))),
        "shape with ndim over MAX_NDIM": _array_kind(Reason.BAD_SHAPE, _with(
            "shape", st.lists(st.integers(0, 3), min_size=MAX_NDIM + 1,
                              max_size=MAX_NDIM + 4))),
    },
}
NEEDS_AN_ARRAY = {*MUTATIONS["descriptors"], "one data frame dropped",
                  "data frame one byte short", "data frame one byte long"}


@pytest.mark.parametrize("group", list(MUTATIONS))
@PROPERTY
@given(data=st.data())
def test_one_mutation_is_refused_with_its_reason(group: str, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(MUTATIONS[group])), label="mutation")
    m = data.draw(messages(min_arrays=1 if kind in NEEDS_AN_ARRAY else 0,
                           contents=cheap_arrays), label="message")
    frames = wire(encode(**m))
    decode(frames, BIG)  # valid before the mutation
    header = msgpack.unpackb(frames[1])
    mutated, max_bytes, reason = MUTATIONS[group][kind](data, header, frames)
    with pytest.raises(WireError) as refused:
        decode(mutated, max_bytes)
    assert refused.value.reason is reason, f"{kind}: {refused.value}"


def test_decode_accepts_a_zero_dim_array() -> None:
    frames = wire(encode("alt", 3, -5, [("value", np.zeros(1, np.float64))]))
    header = msgpack.unpackb(frames[1])
    header["arrays"][0]["shape"] = []
    _, array = decode(_repack(frames, header), BIG).arrays[0]
    assert array.shape == () and array.dtype == np.float64


@PROPERTY
@given(st.lists(st.binary(max_size=64), max_size=MAX_ARRAYS + 4),
       st.integers(0, 1 << 12))
def test_arbitrary_frames_are_decoded_or_refused_never_crash(frames: Frames,
                                                              max_bytes: int) -> None:
    try:
        message = decode(frames, max_bytes)
    except WireError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert message.topic.encode() == frames[0]


# -- inbound checks -----------------------------------------------------------------------------

INPUTS = {
    "imu": SignalSpec("imu", "float32", (3,), input=True),
    "alt": SignalSpec("alt", "float64", (1,), input=True),  # scalars: see the regression tests
    "cam": SignalSpec("cam", "uint8", (2, 4), input=True),
}
seqs_small = st.integers(0, 8)  # small, so duplicates and reordering are frequent
times = st.integers(-10**9, 10**9)
inbound = st.tuples(
    st.sampled_from([*INPUTS, TICK_TOPIC, "unknown", "imu.x"]),  # topic
    st.integers(0, 2),                                          # number of arrays
    st.sampled_from(["float32", "float64", "uint8", "int32"]),   # dtype
    st.sampled_from([(3,), (1,), (2, 4), (1, 3)]),               # shape
    seqs_small, times)
well_formed = (st.sampled_from(list(INPUTS.values())).flatmap(
    lambda s: st.tuples(st.just(s.name), st.just(1), st.just(s.dtype), st.just(s.shape),
                        seqs_small, times))
    | st.tuples(st.just(TICK_TOPIC), st.just(0), st.just("uint8"), st.just(()), seqs_small,
                times))


def _expected_refusal(topic: str, n: int, dtype: str, shape: tuple[int, ...],
                      seq: int, last: dict[str, int]) -> str | None:
    """The ICD's order of checks for a sensor-socket message that decodes."""
    if topic == TICK_TOPIC:
        if n:
            return "bad_frame_count"
    elif topic not in INPUTS:
        return "unknown_topic"
    elif n != 1:
        return "bad_frame_count"
    elif dtype != INPUTS[topic].dtype:
        return "bad_dtype"
    elif shape != INPUTS[topic].shape:
        return "bad_shape"
    if topic in last and seq == last[topic]:
        return "duplicate"
    if topic in last and seq < last[topic]:
        return "out_of_order"
    return None


@PROPERTY
@given(st.lists(well_formed | inbound | st.lists(st.binary(max_size=16), max_size=4),
                max_size=40))
def test_inbound_checks_count_every_message_once_by_reason(stream: list[Any]) -> None:
    checks = InboundChecks(INPUTS, 1 << 20)
    last: dict[str, int] = {}
    rejects: Counter[str] = Counter()
    gaps = accepted = 0
    for item in stream:
        if isinstance(item, list):  # raw junk frames: refused as decode refuses them
            with pytest.raises(WireError) as refused:
                decode(item, 1 << 20)
            assert checks.check(item) is None
            rejects[refused.value.reason.value] += 1
            continue
        topic, n, dtype, shape, seq, t_ns = item
        arrays = [(f"a{i}", np.zeros(shape, dtype)) for i in range(n)]
        message = checks.check(wire(encode(topic, seq, t_ns, arrays)))
        expected = _expected_refusal(topic, n, dtype, shape, seq, last)
        if expected is None:
            assert message is not None, (item, dict(checks.rejects))
            assert (message.topic, message.seq, message.t_ns) == (topic, seq, t_ns)
            gaps += seq - last[topic] - 1 if topic in last else 0
            last[topic] = seq
            accepted += 1
        else:
            assert message is None, item
            rejects[expected] += 1
    assert checks.received == len(stream)
    assert checks.rejects == rejects
    assert sum(checks.rejects.values()) + accepted == checks.received
    assert set(checks.rejects) <= {r.value for r in Reason}
    assert checks.gaps == gaps


# -- command processor --------------------------------------------------------------------------


class FakeTarget:
    """Records what the processor asks of the executive."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def request_enter_safe(self, reason: str = "by command") -> None:
        self.calls.append(("request_enter_safe", (reason,)))

    def request_leave_safe(self) -> None:
        self.calls.append(("request_leave_safe", ()))

    def request_reset_counters(self) -> None:
        self.calls.append(("request_reset_counters", ()))

    def request_restore_primary(self, task: str) -> None:
        self.calls.append(("request_restore_primary", (task,)))

    def stop(self) -> None:
        self.calls.append(("stop", ()))


TASKS = frozenset({"nav", "guid"})
REPLY_KEYS = {"v", "seq", "status", "reason", "detail", "result"}


def _processor(mode: Mode = Mode.SAFE,
               classes: dict[str, frozenset[CommandClass]] | None = None,
               ) -> tuple[CommandProcessor, FakeTarget]:
    target = FakeTarget()
    return CommandProcessor(target, lambda: {"frames": 7}, lambda: mode, TASKS, classes), target


def _reply(processor: CommandProcessor, client: str, payload: bytes) -> dict[str, Any]:
    reply = msgpack.unpackb(processor.handle(client, payload), raw=False)
    assert isinstance(reply, dict) and set(reply) == REPLY_KEYS
    assert reply["v"] == PROTOCOL_VERSION
    assert reply["status"] in ("accepted", "rejected")
    if reply["status"] == "rejected":
        assert reply["reason"] in {r.value for r in CommandReason}
        assert isinstance(reply["detail"], str) and reply["result"] == {}
    else:
        assert reply["reason"] is None and reply["detail"] == ""
        assert isinstance(reply["result"], dict)
    return reply


def _request(cmd: str, seq: int, **args: Any) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "cmd": cmd, "seq": seq, "args": args})


@PROPERTY
@given(st.binary(max_size=MAX_HEADER_BYTES + 64))
def test_random_bytes_always_get_a_rejection_and_never_act(payload: bytes) -> None:
    processor, target = _processor()
    reply = _reply(processor, "c", payload)
    assert reply["status"] == "rejected"
    assert reply["reason"] in ("malformed", "bad_version")
    assert target.calls == []


# Requests of the right outline with arbitrary values (args keys are strings and values
# hashable: see the regression tests below).
fuzzed_requests = st.fixed_dictionaries({
    "v": st.just(PROTOCOL_VERSION) | not_ints,
    "cmd": st.sampled_from(sorted(COMMANDS)) | st.text(max_size=8) | not_ints,
    "seq": st.integers(0, UINT64_MAX) | st.integers(INT64_MIN, -1) | not_ints,
    "args": st.dictionaries(st.sampled_from(["mode", "task", "x"]),
                            st.sampled_from(["SAFE", "NOMINAL", "nav", "READY"]) | scalars,
                            max_size=2)
    | not_maps,
})


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), fuzzed_requests), max_size=20),
       st.sampled_from(list(Mode)))
def test_fuzzed_requests_are_answered_and_accepted_sequences_increase(
        stream: list[tuple[str, dict[str, Any]]], mode: Mode) -> None:
    processor, target = _processor(mode)
    last: dict[str, int] = {}
    for client, request in stream:
        calls = len(target.calls)
        reply = _reply(processor, client, msgpack.packb(request))
        if reply["status"] == "accepted":
            assert request["v"] == PROTOCOL_VERSION and request["cmd"] in COMMANDS
            assert set(request["args"]) == COMMANDS[request["cmd"]].args
            assert request["seq"] > last.get(client, -1)
            assert reply["seq"] == request["seq"]
            last[client] = request["seq"]
            assert len(target.calls) == calls + (request["cmd"] != "status")
        else:
            assert len(target.calls) == calls
    assert processor.accepted + sum(processor.rejected.values()) == len(stream)


valid_commands = st.sampled_from([
    ("status", {}, None),
    ("set_mode", {"mode": "SAFE"}, ("request_enter_safe", ("by command",))),
    ("set_mode", {"mode": "NOMINAL"}, ("request_leave_safe", ())),
    ("restore_primary", {"task": "nav"}, ("request_restore_primary", ("nav",))),
    ("restore_primary", {"task": "guid"}, ("request_restore_primary", ("guid",))),
    ("reset_counters", {}, ("request_reset_counters", ())),
    ("stop", {}, ("stop", ())),
])


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), valid_commands,
                          st.integers(1, 2**40)), min_size=1, max_size=15),
       st.integers(0, 2**20))
def test_valid_commands_act_once_and_replays_are_refused(
        stream: list[tuple[str, tuple[str, dict[str, Any], Any], int]], first: int) -> None:
    processor, target = _processor(Mode.SAFE)
    seq: dict[str, int] = {}
    sent: list[tuple[str, bytes, int]] = []
    for client, (cmd, args, call), step in stream:
        seq[client] = seq.get(client, first - 1) + step  # per client, strictly increasing
        payload = _request(cmd, seq[client], **args)
        calls = list(target.calls)
        reply = _reply(processor, client, payload)
        assert reply["status"] == "accepted", reply
        assert reply["seq"] == seq[client]
        assert target.calls == calls + ([call] if call else [])
        if cmd == "status":
            assert reply["result"] == {"frames": 7, "mode": "SAFE"}
        replay = _reply(processor, client, payload)
        assert (replay["status"], replay["reason"]) == ("rejected", "duplicate")
        assert target.calls == calls + ([call] if call else [])
        sent.append((client, payload, seq[client]))
    calls = list(target.calls)
    for client, payload, s in sent:  # replay everything, in order
        reply = _reply(processor, client, payload)
        expected = "duplicate" if s == seq[client] else "out_of_order"
        assert (reply["status"], reply["reason"]) == ("rejected", expected)
    assert target.calls == calls


CLASSES = {"ro": frozenset({CommandClass.READ}),
           "ctl": frozenset({CommandClass.READ, CommandClass.CONTROL}),
           "adm": frozenset(CommandClass)}


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from([*CLASSES, "stranger"]), valid_commands),
                max_size=15))
def test_command_classes_are_enforced_and_refusals_do_not_use_up_the_sequence(
        stream: list[tuple[str, tuple[str, dict[str, Any], Any]]]) -> None:
    processor, _ = _processor(Mode.SAFE, CLASSES)
    seq: dict[str, int] = {}
    for client, (cmd, args, _call) in stream:
        s = seq.get(client, 0) + 1
        reply = _reply(processor, client, _request(cmd, s, **args))
        if COMMANDS[cmd].cls in CLASSES.get(client, frozenset()):
            assert reply["status"] == "accepted", reply
            seq[client] = s
        else:
            assert (reply["status"], reply["reason"]) == ("rejected", "forbidden")
    # a refusal never consumed a number: the next one is still accepted
    for client in CLASSES:
        assert _reply(processor, client, _request("status", seq.get(client, 0) + 1)
                      )["status"] == "accepted"


def test_invalid_state_does_not_use_up_the_sequence_number() -> None:
    processor, target = _processor(Mode.NOMINAL)
    reply = _reply(processor, "c", _request("set_mode", 5, mode="NOMINAL"))
    assert (reply["status"], reply["reason"]) == ("rejected", "invalid_state")
    assert _reply(processor, "c", _request("set_mode", 5, mode="SAFE"))["status"] == "accepted"
    assert target.calls == [("request_enter_safe", ("by command",))]


# -- defects found by these tests, fixed: kept as regression tests ------------------------------



def _unrepresentable() -> Frames:
    frames = wire(encode("imu", 0, 0, [("value", np.zeros(0, np.float64))]))
    header = msgpack.unpackb(frames[1])
    header["arrays"][0]["shape"] = [0, 2**31, 2**31]
    return _repack(frames, header)


def test_decode_refuses_a_zero_size_shape_numpy_cannot_represent() -> None:
    with pytest.raises(WireError) as refused:
        decode(_unrepresentable(), BIG)
    assert refused.value.reason is Reason.BAD_SHAPE


def test_inbound_checks_survive_a_zero_size_shape_numpy_cannot_represent() -> None:
    # The receiver thread calls check() and catches only WireError: this kills it.
    checks = InboundChecks(INPUTS, 1 << 20)
    assert checks.check(_unrepresentable()) is None
    assert checks.rejects["bad_shape"] == 1




@pytest.mark.parametrize("dtype", sorted(WIRE_DTYPES))
def test_zero_dim_arrays_keep_their_shape(dtype: str) -> None:
    frames = wire(encode("alt", 0, 0, [("value", np.zeros((), dtype))]))
    assert decode(frames, BIG).arrays[0][1].shape == ()


def test_a_scalar_input_sample_is_accepted() -> None:
    checks = InboundChecks({"alt": SignalSpec("alt", "float64", (), input=True)}, 1 << 20)
    message = checks.check(wire(encode("alt", 0, 0, [("value", np.float64(2.5))])))
    assert message is not None, dict(checks.rejects)


def test_decoded_arrays_are_read_only_whatever_the_buffer() -> None:
    frames = wire(encode("imu", 0, 0, [("value", np.zeros(3, np.float32))]))
    message = decode([memoryview(bytearray(f)) for f in frames], BIG)
    assert not message.arrays[0][1].flags.writeable


@pytest.mark.parametrize("version", [True, 1.0])
def test_header_version_must_be_the_integer_1(version: Any) -> None:
    frames = wire(encode("imu", 0, 0))
    header = msgpack.unpackb(frames[1])
    header["v"] = version
    with pytest.raises(WireError):
        decode(_repack(frames, header), BIG)


@pytest.mark.parametrize("version", [True, 1.0])
def test_command_version_must_be_the_integer_1(version: Any) -> None:
    processor, _ = _processor()
    payload = msgpack.packb({"v": version, "cmd": "status", "seq": 1, "args": {}})
    assert _reply(processor, "c", payload)["reason"] == "bad_version"


def test_args_with_non_string_keys_are_malformed() -> None:
    processor, _ = _processor(classes={"ro": CLASSES["ro"]})
    payload = msgpack.packb({"v": 1, "cmd": "status", "seq": 1, "args": {b"a": 1, "b": 2}})
    assert _reply(processor, "ro", payload)["reason"] == "malformed"


@pytest.mark.parametrize("task", [[], {}, ["nav"]])
def test_restore_primary_with_an_unhashable_task_is_rejected(task: Any) -> None:
    processor, _ = _processor()
    reply = _reply(processor, "c", _request("restore_primary", 1, task=task))
    assert reply["reason"] == "bad_args"


class _Recorder:
    """Stands for the PUB socket: keeps what BusSink sends."""

    def __init__(self) -> None:
        self.sent: list[list[Any]] = []
        self._message: list[Any] = []

    def send(self, frame: Any, flags: int = 0, copy: bool = True) -> None:
        self._message.append(frame)
        if not flags & zmq.SNDMORE:
            self.sent.append(self._message)
            self._message = []


def test_health_messages_decode_with_twenty_four_tasks() -> None:
    recorder = _Recorder()
    bus = {"bus": {"received": 0, "rejects": {}, "sequence_gaps": 0, "ticks_ignored": 0,
                   "secure": False, "authenticator_alive": True},
           "commands": {"accepted": 0, "rejected": {}}}  # as BusServer._status_extra
    sink = BusSink(recorder, 100, lambda: bus)  # type: ignore[arg-type]
    health = Health()
    for i in range(24):
        health.tasks[f"task_{i:02d}"] = TaskHealth()
    sink.frame_done(0, health)
    message = decode(wire(recorder.sent[0]), BIG, max_header_bytes=MAX_OUTBOUND_HEADER_BYTES)
    assert message.topic == "health"
