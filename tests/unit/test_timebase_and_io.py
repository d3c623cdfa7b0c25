"""Integer-nanosecond helpers and the in-process sources and sinks."""

from __future__ import annotations

import numpy as np

from flightai.sched.io import DigestSink, ListSource, Publication, Sample
from flightai.timebase import FOREVER, NEVER, add_ns, format_ns, ms_to_ns


def test_add_ns_saturates_and_keeps_sentinels() -> None:
    assert add_ns(10, 5) == 15
    assert add_ns(FOREVER, -1) == FOREVER
    assert add_ns(NEVER, 1) == NEVER
    assert add_ns(FOREVER - 1, 10) == FOREVER
    assert add_ns(NEVER + 1, -10) == NEVER
    assert ms_to_ns(20) == 20_000_000


def test_format_ns() -> None:
    assert format_ns(1_250_000_000) == "1.250 s"
    assert format_ns(20_000_000) == "20 ms"
    assert format_ns(35_000) == "35 us"
    assert (format_ns(FOREVER), format_ns(NEVER)) == ("forever", "never")


def test_list_source_delivers_each_sample_at_the_first_instant_at_or_after_it() -> None:
    one = np.ones(1, np.float32)
    source = ListSource([Sample("x", 15, one), Sample("x", 0, one), Sample("y", 10, one)])
    assert [(s.signal, s.t_ns) for s in source.poll(0)] == [("x", 0)]
    assert [(s.signal, s.t_ns) for s in source.poll(10)] == [("y", 10)]
    assert source.poll(14) == []
    assert [(s.signal, s.t_ns) for s in source.poll(20)] == [("x", 15)]


def test_digest_covers_time_task_status_dtype_and_bytes() -> None:
    value = np.array([1.0], np.float32)

    def digest(**changes: object) -> str:
        fields: dict[str, object] = {"t_ns": 10, "task": "t", "t_release_ns": 0,
                                     "outputs": (("y", value),), "status": "ok"}
        fields.update(changes)
        sink = DigestSink()
        sink.publish(Publication(**fields))  # type: ignore[arg-type]
        return sink.hexdigest()

    base = digest()
    assert base == digest()
    variants = [digest(t_ns=20), digest(task="u"), digest(status="held"),
                digest(t_release_ns=1), digest(outputs=(("y", value.astype(np.float64)),)),
                digest(outputs=(("y", np.array([1.0000001], np.float32)),))]
    assert base not in variants and len(set(variants)) == len(variants)


def test_digest_is_sha256_of_the_documented_layout_for_any_memory_layout() -> None:
    """Pins the digest's bytes (recorded digests and the README's must not change)."""
    import hashlib
    import struct

    grid = np.arange(6, dtype=np.float64).reshape(2, 3)
    outputs = (("a", np.array([1.5], np.float32)), ("b", grid.T), ("c", np.array([True])))
    sink = DigestSink()
    for publication in (Publication(30, "t", 10, outputs, "ok"),
                        Publication(40, "u", 20, outputs[:1], "held")):
        sink.publish(publication)
    expected = hashlib.sha256()
    for t_ns, t_release_ns, task, status, outs in ((30, 10, "t", "ok", outputs),
                                                  (40, 20, "u", "held", outputs[:1])):
        expected.update(struct.pack("<qq", t_ns, t_release_ns) + f"{task}|{status}".encode())
        for signal, value in outs:
            expected.update(f"|{signal}|{value.dtype.str}|{value.shape}".encode())
            expected.update(np.ascontiguousarray(value).tobytes())
    assert sink.hexdigest() == expected.hexdigest() and sink.count == 2
