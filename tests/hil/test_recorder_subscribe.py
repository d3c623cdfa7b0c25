"""The recorder's SUB path: the writer thread reads its sockets; chunks, gaps, views, close.

A test waits on what is in the file's closed chunks (a snapshot, recovered), which
says per topic what has arrived; ``Recorder.written`` counts the warm-up messages too,
some of which may still be on their way when the subscription is seen to be live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from mcap.records import Channel, Chunk
from mcap.records import Message as McapMessage
from mcap.stream_reader import StreamReader, breakup_chunk

from flightai.bus.wire import encode
from hil.ports import free_ports
from hil.record import Recorder, RecorderOptions, Recording
from hil.record.recorder import _MESSAGE_OVERHEAD, FROM_RUNTIME, VIEW_BACKLOG
from hil.record.recover import NotARecording, recover
from tests.integration.bus_harness import wait_for

POLL_LIMIT_S = 30.0  # a bound on waiting for the recorder, never an assertion on speed
WARM = "warm"


@pytest.fixture
def pub(request: pytest.FixtureRequest) -> Iterator[tuple[zmq.Socket, str]]:
    """A PUB socket bound on loopback and its endpoint.

    Its high-water mark is 0 (none) unless the test is parametrized ``pub`` (indirect):
    set after the bind, it would not apply to the connections the bind accepts.
    """
    (port,) = free_ports(1)
    endpoint = f"tcp://127.0.0.1:{port}"
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.sndhwm = getattr(request, "param", 0)
    socket.linger = 0
    socket.bind(endpoint)
    try:
        yield socket, endpoint
    finally:
        socket.close()
        context.term()


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    """Recorders a test opens, closed after it even when it fails."""
    opened: list[Recorder] = []
    yield opened
    for recorder in opened:
        recorder.close()


def _open(recorders: list[Recorder], path: Path, **options: object) -> Recorder:
    recorder = Recorder(path, RecorderOptions(**options))  # type: ignore[arg-type]
    recorders.append(recorder)
    return recorder


def _warm_up(pub: zmq.Socket, ready: Callable[[], bool]) -> bool:
    """Publish on ``warm`` until ``ready()`` (subscriptions are live); False if never."""
    seq = 0

    def published() -> bool:
        nonlocal seq
        pub.send_multipart(encode(WARM, seq, 0))
        seq += 1
        return ready()

    return wait_for(published, timeout_s=POLL_LIMIT_S)


def _sample(topic: str, seq: int, nbytes: int = 24) -> list[bytes]:
    frames = encode(topic, seq, seq * 1000, [("x", np.full(nbytes // 8, seq, np.float64))])
    return [f if isinstance(f, bytes) else f.tobytes() for f in frames]


def _on_disk(path: Path, scratch: Path) -> Recording | None:
    """The closed chunks of a recording still being written (None: no header yet)."""
    snapshot, fixed = scratch / "snapshot.mcap", scratch / "fixed.mcap"
    snapshot.write_bytes(path.read_bytes())
    try:
        recover(snapshot, fixed)
    except NotARecording:
        return None
    return Recording(fixed)


def _count_on_disk(path: Path, scratch: Path, topics: list[str]) -> int:
    recording = _on_disk(path, scratch)
    return 0 if recording is None else sum(m.topic in topics for m in recording.messages)


def _hold(recorder: Recorder) -> threading.Event:
    """Keep the writer thread busy (reading nothing) until the returned event is set."""
    release = threading.Event()
    recorder._call(lambda _writer: release.wait())
    return release


@pytest.mark.parametrize("source", ["subscribe", "record"])
def test_an_open_chunk_closes_on_its_time_bound_while_nothing_arrives(
        tmp_path, pub, recorders, source) -> None:
    socket, endpoint = pub
    path = tmp_path / "idle.mcap"
    recorder = _open(recorders, path, chunk_time_s=0.1, views=False)
    if source == "subscribe":
        recorder.subscribe(endpoint)
        assert _warm_up(socket, lambda: recorder.written > 0), "the subscription never went live"
    else:
        for seq in range(5):
            recorder.record(encode(WARM, seq, 0))

    def all_on_disk() -> bool:  # nothing is published any more: written stops growing
        written = recorder.written
        return written > 0 and _count_on_disk(path, tmp_path, [WARM]) == written

    assert wait_for(all_on_disk, timeout_s=POLL_LIMIT_S), (
        "the open chunk never closed on its time bound")
    assert recorder.stats.chunks >= 1
    stats = recorder.close()
    assert stats.messages == {WARM: recorder.written} and stats.drops == 0


def test_seq_gaps_are_counted_per_topic_on_the_sub_path(tmp_path, pub, recorders) -> None:
    socket, endpoint = pub
    path = tmp_path / "gaps.mcap"
    recorder = _open(recorders, path, chunk_time_s=0.1)
    recorder.subscribe(endpoint)
    assert _warm_up(socket, lambda: recorder.written > 0)
    sent = {"out.a": [0, 1, 2, 5, 6], "out.b": [0, 3, 4, 10], "out.c": [7, 8, 9]}
    nbytes = {"out.a": 24, "out.b": 24, "out.c": 128 * 1024}  # out.c: packed from the frame
    for position in range(5):  # interleaved, as a runtime publishes
        for topic, seqs in sent.items():
            if position < len(seqs):
                socket.send_multipart(_sample(topic, seqs[position], nbytes[topic]))
    total = sum(map(len, sent.values()))
    assert wait_for(lambda: _count_on_disk(path, tmp_path, list(sent)) == total,
                    timeout_s=POLL_LIMIT_S)
    stats = recorder.close()
    assert {t: stats.seq_gaps.get(t, 0) for t in sent} == {"out.a": 2, "out.b": 7, "out.c": 0}
    assert stats.seq_gaps.get(WARM, 0) == 0 and stats.drops == 0
    recording = Recording(path)
    for topic, seqs in sent.items():
        messages = list(recording.iter_decoded(topic))
        assert [m.seq for m in messages] == seqs
        for message in messages:  # byte for byte: the array is its seq, repeated
            (name, array), = message.arrays
            assert name == "x" and array.nbytes == nbytes[topic] and (array == message.seq).all()


@pytest.mark.parametrize("pub", [10], indirect=True)
def test_overflow_of_the_sub_socket_is_counted_as_seq_gaps_not_drops(
        tmp_path, pub, recorders) -> None:
    socket, endpoint = pub
    path = tmp_path / "overflow.mcap"
    recorder = _open(recorders, path, views=False, chunk_time_s=0.1)
    recorder.subscribe(endpoint, rcvhwm=10)
    assert _warm_up(socket, lambda: recorder.written > 0)
    image = np.zeros(1 << 16)  # 512 KiB, sent zero-copy

    def send(seq: int) -> None:
        socket.send_multipart(encode("out.flood", seq, seq, [("x", image)]))

    release = _hold(recorder)  # the socket fills: ZeroMQ drops past the high-water marks
    flood = 256  # 128 MiB: more than loopback TCP buffers (tcp_rmem's maximum) hold
    for seq in range(flood):
        send(seq)
    release.set()
    seq = flood

    def a_later_one_arrived() -> bool:  # the drops were the newest: a later seq shows them
        nonlocal seq
        send(seq)
        seq += 1
        recording = _on_disk(path, tmp_path)
        return recording is not None and any(
            m.seq >= flood for m in recording.iter_decoded("out.flood"))

    assert wait_for(a_later_one_arrived, timeout_s=POLL_LIMIT_S)
    stats = recorder.close()
    seqs = [m.seq for m in Recording(path).iter_decoded("out.flood")]
    assert seqs == sorted(seqs) and seqs[0] == 0 and seqs[-1] >= flood
    assert stats.seq_gaps["out.flood"] == seqs[-1] + 1 - len(seqs) > 0
    assert stats.drops == 0 and stats.messages["out.flood"] == len(seqs)


def test_views_are_skipped_while_a_socket_never_runs_empty(tmp_path, pub, recorders) -> None:
    socket, endpoint = pub
    recorder = _open(recorders, tmp_path / "views.mcap")
    recorder.subscribe(endpoint)
    probe_context = zmq.Context()  # a second subscriber: once it has the burst, so has ours
    probe = probe_context.socket(zmq.SUB)
    received = {b"imu.dv": 0}

    def probe_has(count: int) -> bool:
        while probe.poll(0):
            topic = probe.recv_multipart()[0]
            received[topic] = received.get(topic, 0) + 1
        return received[b"imu.dv"] >= count and sum(received.values()) > 0

    burst = 4 * VIEW_BACKLOG
    try:
        probe.subscribe(b"")
        probe.connect(endpoint)
        assert _warm_up(socket, lambda: recorder.written > 0 and probe_has(0))
        release = _hold(recorder)
        for seq in range(burst):
            socket.send_multipart(_sample("imu.dv", seq))
        assert wait_for(lambda: probe_has(burst), timeout_s=POLL_LIMIT_S)
        release.set()
        stats = recorder.close()
    finally:
        probe.close(linger=0)
        probe_context.term()
    assert stats.messages["imu.dv"] == burst and stats.seq_gaps.get("imu.dv", 0) == 0
    # a burst found waiting: the first VIEW_BACKLOG messages read in a row (warm-up
    # messages still on their way at the hold among them) have their views, the rest none
    assert stats.views > 0
    assert 0 < stats.view_skips <= burst - VIEW_BACKLOG + stats.messages[WARM]


def test_close_returns_while_a_publisher_keeps_publishing(tmp_path, pub, recorders) -> None:
    socket, endpoint = pub
    recorder = _open(recorders, tmp_path / "busy.mcap", views=False)
    recorder.subscribe(endpoint, rcvhwm=1000)
    assert _warm_up(socket, lambda: recorder.written > 0)
    stop = threading.Event()

    def publish() -> None:
        seq = 0
        while not stop.is_set():
            socket.send_multipart(_sample("out.busy", seq))
            seq += 1

    publisher = threading.Thread(target=publish)
    closer = threading.Thread(target=recorder.close)
    publisher.start()
    try:
        assert wait_for(lambda: recorder.written > 1000, timeout_s=POLL_LIMIT_S)
        closer.start()
        closer.join(POLL_LIMIT_S)
        assert not closer.is_alive(), "close() never returned"
    finally:
        stop.set()
        publisher.join()
    stats = recorder.stats
    assert stats.messages["out.busy"] > 1000 and stats.drops == 0


def _frames(frames: list[object]) -> list[bytes]:
    return [f if isinstance(f, bytes) else f.tobytes() for f in frames]  # type: ignore[attr-defined]


def _odd_headers(topic: str) -> dict[str, bytes]:
    """Headers the reference prefix reads wrongly or not at all, named after why."""
    reference = encode(topic, 0, 0)[1]
    at = reference.index(b"\xa3seq") + 4  # the seq value (0: one byte)
    return {"cut at seq": reference[:at], "seq cut short": reference[:at] + b"\xce\x00",
            "seq -1": reference[:at] + b"\xff" + reference[at + 1:]}


def test_the_sub_path_writes_what_record_writes(tmp_path, pub, recorders) -> None:
    """Same data, seq gaps and views from a socket as from ``record``, for any header layout."""
    odd = _odd_headers("out.odd")
    fields = {"task": "nav"}  # a sixth header key: another map marker before the prefix
    messages = [
        *(_frames(encode("out.ref", seq, seq, [("x", np.full(3, seq, np.float64))]))
          for seq in (0, 1, 127, 128, 300, 70_000, 2**33)),  # every width of uint
        *(_frames(encode("out.wide", seq, 0, fields=fields if seq != 3 else None))
          for seq in (0, 2, 3, 5)),
        *([b"out.order", msgpack.packb({"seq": seq, "v": 1, "topic": "out.order", "t_ns": 0,
                                        "arrays": []})] for seq in (0, 4)),
        _frames(encode("out.odd", 0, 0)), [b"out.odd", odd["cut at seq"]],
        [b"out.odd", odd["seq cut short"]], [b"out.odd"], _frames(encode("out.odd", 2, 0)),
        [b"out.neg", odd["seq -1"]], _frames(encode("out.neg", 1, 0)),
        *(_frames(encode("out.big", seq, 0, fields={"note": "x" * 70_000}))  # read as a buffer
          for seq in (0, 3)),
    ]
    gaps = {"out.ref": 125 + 171 + 69_699 + 2**33 - 70_001, "out.wide": 2, "out.order": 3,
            "out.odd": 1, "out.neg": 1, "out.big": 2}
    socket, endpoint = pub
    path = tmp_path / "sub.mcap"
    recorder = _open(recorders, path, chunk_time_s=0.1)
    recorder.subscribe(endpoint)
    assert _warm_up(socket, lambda: recorder.written > 0)
    before = time.time_ns()
    for frames in messages:
        socket.send_multipart(frames)
    assert wait_for(lambda: _count_on_disk(path, tmp_path, list(gaps)) == len(messages),
                    timeout_s=POLL_LIMIT_S)
    stats = recorder.close()
    after = time.time_ns()
    queued = _open(recorders, tmp_path / "record.mcap")
    for frames in messages:
        assert queued.record(frames)
    queued_stats = queued.close()

    got = [m for m in Recording(path).messages if m.topic != WARM]
    assert [list(m.frames) for m in got] == messages
    assert [m.frames for m in Recording(tmp_path / "record.mcap").messages] == \
        [m.frames for m in got]
    assert {t: stats.seq_gaps.get(t, 0) for t in gaps} == gaps == queued_stats.seq_gaps
    assert stats.views == queued_stats.views > 0 and stats.view_skips == 0
    times = [m.log_time_ns for m in got]  # each message's own receive time
    assert times == sorted(set(times)) and before <= times[0] and times[-1] <= after


def _chunk_sizes(path: Path) -> list[list[int]]:
    """Per chunk, the bytes the recorder counts for each message in it (data and overhead)."""
    topics: dict[int, str] = {}
    sizes: list[list[int]] = []
    with path.open("rb") as f:
        for record in StreamReader(f, emit_chunks=True, validate_crcs=True).records:
            if not isinstance(record, Chunk):
                continue
            sizes.append([])
            for inner in breakup_chunk(record, validate_crc=True):
                if isinstance(inner, Channel):
                    topics[inner.id] = inner.topic
                elif isinstance(inner, McapMessage):
                    sizes[-1].append(len(inner.data) + _MESSAGE_OVERHEAD
                                     + len(topics[inner.channel_id]))
    return sizes


@pytest.mark.parametrize("source", ["subscribe", "record"])
def test_a_chunk_closes_once_it_holds_chunk_bytes(tmp_path, pub, recorders, source) -> None:
    socket, endpoint = pub
    path, chunk_bytes = tmp_path / "sized.mcap", 2000
    recorder = _open(recorders, path, chunk_bytes=chunk_bytes, chunk_time_s=600.0, views=False)
    sent = [_sample("out.size", seq) for seq in range(100)]
    if source == "subscribe":
        recorder.subscribe(endpoint)
        assert _warm_up(socket, lambda: recorder.written > 0)
        for frames in sent:
            socket.send_multipart(frames)
        channels = recorder._channels[FROM_RUNTIME]
        assert wait_for(lambda: b"out.size" in channels and channels[b"out.size"].count == 100,
                        timeout_s=POLL_LIMIT_S)
    else:
        for frames in sent:
            assert recorder.record(frames)
    stats = recorder.close()
    sizes = _chunk_sizes(path)
    assert stats.messages["out.size"] == 100 and stats.chunks >= len(sizes) - 1 >= 5
    for chunk in sizes[:-1]:  # closed by the message that filled it, not before or after
        assert sum(chunk) - chunk[-1] < chunk_bytes <= sum(chunk)
    assert sum(sizes[-1]) - sizes[-1][-1] < chunk_bytes
