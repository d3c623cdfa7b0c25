"""The MCAP recorder: a demo flight recorded both ways, counters, a SIGKILL and its recovery."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader

from flightai.bus.wire import encode
from flightai.sched.io import DigestSink, Publication
from hil import demo
from hil.ports import free_ports
from hil.record import Recorder, RecorderOptions, Recording, pack_frames, unpack_frames
from hil.record.fingerprint import BIT_EXACT_FIELDS, bit_exact, fingerprint
from hil.record.recover import NotARecording, recover
from tests.integration.bus_harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
POLL_LIMIT_S = 60.0  # a bound on waiting for the recorder, never an assertion on speed


# -- a recorded demo flight ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("demo")
    mcap = out / "run.mcap"
    status = demo.main(["--nominal", "--out", str(out), "--record", str(mcap)])
    assert status == 0, (out / "outcome.json").read_text()
    return out, mcap


@pytest.mark.slow
def test_a_demo_recording_opens_with_the_mcap_reader_and_its_crcs_validate(flight) -> None:
    _, path = flight
    with path.open("rb") as f:
        reader = make_reader(f, validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert sum(1 for _ in reader.iter_messages()) == summary.statistics.message_count
        topics = [c.topic for c in summary.channels.values()]
    assert len(topics) == len(set(topics))  # one channel per topic
    assert {"frame", "health", "tick", "imu.dv", "camera.image", "out.nav",
            "out.guidance", "out.command"} <= set(topics)
    wire = [c for c in summary.channels.values() if not c.topic.startswith("/view/")]
    assert all(c.message_encoding == "msgpack" for c in wire)  # the views: tests/hil/test_views.py
    with path.open("rb") as f:  # every record read in order, chunk and data-section CRCs checked
        assert sum(1 for _ in StreamReader(f, validate_crcs=True).records) > 0


@pytest.mark.slow
def test_a_demo_recording_holds_config_hashes_and_fingerprint(flight) -> None:
    _, path = flight
    recording = Recording(path)
    config = recording.metadata["flightai.config"]
    assert config["mission_toml"] == (ROOT / "models" / "ltd1" / "l2.toml").read_text()
    assert "runtime.clock=external" in config["overrides"]
    models = recording.metadata["flightai.models"]
    assert set(models) == {"gnet", "trn_corrnet"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in models.values())
    assert bit_exact(recording.metadata["flightai.platform"], fingerprint())
    assert recording.attachments["l2.toml"].decode() == config["mission_toml"]
    stats = recording.metadata["flightai.recorder"]
    assert stats["drops"] == "0" and json.loads(stats["seq_gaps"]) == {}
    assert sum(json.loads(stats["messages"]).values()) == len(recording.messages)


@pytest.mark.slow
def test_recorded_outputs_decode_to_what_the_runtime_published(flight) -> None:
    out, path = flight
    recording = Recording(path)
    digest = DigestSink()
    for message in recording.iter_decoded("out."):
        f = message.fields
        digest.publish(Publication(message.t_ns, str(f["task"]), int(f["t_release_ns"]),
                                   tuple(message.arrays), str(f["status"])))
    outcome = json.loads((out / "outcome.json").read_text())
    assert digest.hexdigest() == outcome["runtime_digest"] == outcome["digest"]
    # both directions: every message decodes, and ticks run 0, 1, 2, ... without a gap
    sent = [m for m in recording.messages if m.direction == "to_runtime"]
    assert all(m.decode() for m in recording.messages)
    ticks = [m.decode().seq for m in sent if m.topic == "tick"]
    assert ticks == list(range(len(ticks))) and len(ticks) > 1000


# -- counters and layout ------------------------------------------------------------------------


def test_frames_round_trip_byte_for_byte() -> None:
    frames = encode("out.x", 7, -5, [("a", np.arange(6, dtype=np.float32).reshape(2, 3)),
                                     ("b", np.array(True))], fields={"task": "x"})
    data = pack_frames(frames[1:])
    back = unpack_frames("out.x", data)
    assert back == tuple(bytes(f) if isinstance(f, bytes) else f.tobytes() for f in frames)


def test_seq_gaps_and_drops_are_counted_in_the_summary(tmp_path) -> None:
    path = tmp_path / "gaps.mcap"
    release = threading.Event()
    recorder = Recorder(path, RecorderOptions(queue_size=16))
    for seq in (0, 1, 5, 6, 9):
        assert recorder.record(encode("out.t", seq, seq * 1000))
    recorder._call(lambda _writer: release.wait())  # hold the writer: the queue fills
    sent = [recorder.record(encode("out.u", seq, 0)) for seq in range(40)]
    release.set()
    stats = recorder.close()
    assert sent.count(False) == stats.drops > 0
    assert stats.seq_gaps["out.t"] == 3 + 2
    meta = Recording(path).metadata["flightai.recorder"]
    assert json.loads(meta["seq_gaps"])["out.t"] == 5 and int(meta["drops"]) == stats.drops
    assert [m.decode().t_ns for m in Recording(path).messages][:5] == [0, 1000, 5000, 6000, 9000]


def test_fingerprint_fields() -> None:
    fp = fingerprint()
    assert set(BIT_EXACT_FIELDS) <= set(fp) and fp["python"] and fp["numpy"]
    assert not bit_exact(fp, {**fp, "onnxruntime": "0.0"})


# -- SIGKILL mid-run, then recover --------------------------------------------------------------


def _recovered_count(torn: Path, scratch: Path, topic: str) -> int:
    snapshot = scratch / "snapshot.mcap"
    snapshot.write_bytes(torn.read_bytes())
    try:
        return recover(snapshot, scratch / "snapshot-fixed.mcap").topics.get(topic, 0)
    except NotARecording:  # the recorder has not written its header yet
        return 0


def _publish_until(pub: zmq.Socket, done, topic: str = "warm") -> bool:
    """Publish warm-up messages until ``done()``; False if it never was within the poll bound."""
    for seq in range(int(POLL_LIMIT_S / 0.01)):
        if done():
            return True
        pub.send_multipart(encode(topic, seq, 0))
        time.sleep(0.01)
    return bool(done())


def test_a_sigkilled_recorder_loses_at_most_its_open_chunk(tmp_path) -> None:
    (port,) = free_ports(1)
    endpoint = f"tcp://127.0.0.1:{port}"
    torn, fixed = tmp_path / "torn.mcap", tmp_path / "fixed.mcap"
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.sndhwm = 0
    pub.bind(endpoint)
    recorder = subprocess.Popen(
        [sys.executable, "-m", "flightai", "hil", "record", "--outputs", endpoint, "-o",
         str(torn), "--chunk-time-s", "0.1", "--mission", str(ROOT / "models/ltd1/l2.toml")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert recorder.stdout is not None
        assert "flightai hil record" in recorder.stdout.readline()
        # the subscription is live once a chunk of warm-up messages is on disk
        assert _publish_until(pub, lambda: _recovered_count(torn, tmp_path, "warm") > 0), (
            "the recorder never wrote a chunk")
        closed = 300
        for seq in range(closed):
            pub.send_multipart(encode("out.test", seq, seq * 20_000_000,
                                      [("x", np.full(16, seq, np.float64))]))
        # their chunk closes on its time bound, with no further message
        assert wait_for(lambda: _recovered_count(torn, tmp_path, "out.test") >= closed,
                        timeout_s=POLL_LIMIT_S), "the chunk never closed on its time bound"
        total = closed + 50
        for seq in range(closed, total):  # these may still sit in the open chunk when killed
            pub.send_multipart(encode("out.test", seq, seq * 20_000_000,
                                      [("x", np.full(16, seq, np.float64))]))
        recorder.send_signal(signal.SIGKILL)
        assert recorder.wait(timeout=30) == -signal.SIGKILL
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
        if recorder.stdout is not None:
            recorder.stdout.close()
        pub.close()
        context.term()
    with pytest.raises(Exception):  # noqa: B017 - torn: no data end, summary or footer
        Recording(torn)
    report = recover(torn, fixed)
    assert not report.complete and report.bad_chunks == 0
    recording = Recording(fixed)  # opens, every CRC valid
    with fixed.open("rb") as f:
        assert make_reader(f, validate_crcs=True).get_summary() is not None
    seqs = [m.seq for m in recording.iter_decoded("out.test")]
    assert seqs == list(range(len(seqs)))  # nothing lost but the tail
    assert closed <= len(seqs) <= total  # all that was in closed chunks is kept
    for message in recording.iter_decoded("out.test"):
        assert (message.arrays[0][1] == message.seq).all()
    assert "l2.toml" in recording.attachments and "flightai.platform" in recording.metadata


def test_a_failed_writer_is_reported_at_close(tmp_path) -> None:
    recorder = Recorder(tmp_path / "bad.mcap")
    recorder.record([])  # no topic frame: the writer thread fails on it
    with pytest.raises(RuntimeError, match="writer failed"):
        recorder.close()
