"""Recordings for the verdict and report tests: one real demo flight, and small synthetic ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import Writer

from flightai.bus.wire import Message, encode
from hil import demo
from hil.record.reader import Recorded, Recording, unpack_frames
from hil.record.recorder import FROM_RUNTIME, MESSAGE_ENCODING, Recorder, pack_frames

ROOT = Path(__file__).resolve().parents[2]
L2 = ROOT / "models" / "ltd1" / "l2.toml"
MS = 1_000_000


@pytest.fixture(scope="session")
def demo_flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nominal L2 demo flight recorded once (``flightai demo --record``): its run.mcap."""
    folder = tmp_path_factory.mktemp("demo")
    path = folder / "run.mcap"
    status = demo.main(["--config", "l2", "--nominal", "--record", str(path),
                        "--out", str(folder)])
    assert status == 0, (folder / "outcome.json").read_text()
    return path


@pytest.fixture(scope="session")
def demo_recording(demo_flight: Path) -> Recording:
    return Recording(demo_flight)


# -- synthetic recordings (real MCAP files written by the recorder) ------------------------------


def health(t_ns: int, mode: str = "NOMINAL", overruns: int = 0,
           rejects: dict[str, int] | None = None) -> list[Any]:
    """A health message's frames with the keys the checks read."""
    tasks = {"nav": {"overruns": overruns, "wall_exec_p99_ns": 50_000, "wall_exec_max_ns": 90_000},
             "trn": {"overruns": 0, "wall_exec_p99_ns": 2_000_000, "wall_exec_max_ns": 3_000_000}}
    return encode("health", t_ns // (100 * MS), t_ns, fields={"health": {
        "t_ns": t_ns, "mode": mode, "tasks": tasks, "rejects": rejects or {},
        "events": 0, "events_suppressed": 0, "frame_slips": 0, "bus": {"rejects": {}}}})


def event(t_ns: int, kind: str, detail: str = "", severity: str = "WARNING",
          task: str = "", seq: int = 0) -> list[Any]:
    return encode("event", seq, t_ns, fields={"severity": severity, "kind": kind,
                                              "task": task, "detail": detail})


def output(topic: str, t_ns: int, signal: str, value: Any, seq: int = 0) -> list[Any]:
    task = topic.removeprefix("out.")
    return encode(topic, seq, t_ns, [(signal, np.asarray(value))],
                  {"task": task, "t_release_ns": t_ns - 10 * MS, "status": "ok"})


def write(path: Path, messages: Iterable[Sequence[Any] | tuple[Sequence[Any], str]],
          mission: Path | None = None) -> Recording:
    """A real recording of ``messages`` (frames, or (frames, direction)), read back."""
    with Recorder(path) as recorder:
        if mission is not None:
            recorder.add_mission(mission, [])
        for item in messages:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
                recorder.record(item[0], item[1])
            else:
                recorder.record(item, FROM_RUNTIME)
    return Recording(path)


Transform = Callable[[Message, str], list[list[Any]] | None]
"""Given a decoded message and its direction: the frames to write instead (None: keep it)."""


def rewrite(source: Path, target: Path, transform: Transform,
            drop: Callable[[str], bool] = lambda topic: False) -> Recording:
    """A filtered, mutated copy of a recording written with the ``mcap`` writer.

    Metadata and attachments are kept; bus messages go through ``transform``;
    channels whose topic ``drop`` names (and every non-bus channel) are left out.
    """
    with source.open("rb") as f_in, target.open("wb") as f_out:
        reader = make_reader(f_in)
        writer = Writer(f_out)
        writer.start(profile="flightai", library="tests.report")
        for record in reader.iter_metadata():
            writer.add_metadata(record.name, dict(record.metadata))
        for att in reader.iter_attachments():
            writer.add_attachment(att.log_time, att.create_time, att.name, att.media_type,
                                  att.data)
        ids: dict[tuple[str, str], int] = {}
        for _, channel, message in reader.iter_messages(log_time_order=False):
            if channel.message_encoding != MESSAGE_ENCODING or drop(channel.topic):
                continue
            direction = channel.metadata.get("direction", "")
            frames = unpack_frames(channel.topic, message.data)
            decoded = Recorded(channel.topic, direction, message.log_time, frames).decode()
            replaced = transform(decoded, direction)
            for out in ([list(frames)] if replaced is None else replaced):
                topic = bytes(out[0]).decode()
                key = (topic, direction)
                if key not in ids:
                    ids[key] = writer.register_channel(topic, MESSAGE_ENCODING, 0,
                                                       {"direction": direction})
                writer.add_message(ids[key], message.log_time, pack_frames(out[1:]),
                                   message.publish_time)
        writer.finish()
    return Recording(target)
