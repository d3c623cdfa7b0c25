"""Replay sets on a real 2-worker cluster: recordings that replay bit for bit pass, one whose
recorded mission differs from the one that flew is listed with its first divergence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mcap.records import Attachment, Channel, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap.writer import Writer

from hil import demo
from hil.campaign.cluster import open_client
from hil.campaign.replays import ReplayFailed, find_recordings, run_replay_set
from hil.record.recorder import META_CONFIG

pytestmark = pytest.mark.slow


def _rewrite_with_override(source: Path, target: Path, override: str) -> None:
    """A copy of a recording whose stored mission carries one more override than the flight."""
    channels: dict[int, int] = {}
    with open(source, "rb") as f, open(target, "wb") as out:
        writer = Writer(out)
        writer.start(profile="flightai")
        for record in StreamReader(f).records:
            if isinstance(record, Channel):
                channels[record.id] = writer.register_channel(
                    record.topic, record.message_encoding, 0, dict(record.metadata))
            elif isinstance(record, Message):
                writer.add_message(channels[record.channel_id], record.log_time, record.data,
                                   record.publish_time, record.sequence)
            elif isinstance(record, Metadata):
                data = dict(record.metadata)
                if record.name == META_CONFIG:
                    data["overrides"] = (data.get("overrides", "") + "\n" + override).strip()
                writer.add_metadata(record.name, data)
            elif isinstance(record, Attachment):
                writer.add_attachment(record.create_time, record.log_time, record.name,
                                      record.media_type, record.data)
        writer.finish()


@pytest.fixture(scope="module")
def recordings(mission: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: the same nominal demo flight twice, and once with a tampered mission."""
    flight = tmp_path_factory.mktemp("flight")
    status = demo.main(["--mission", str(mission), "--nominal", "--record",
                        str(flight / "run.mcap"), "--out", str(flight)])
    assert status == 0
    folder = tmp_path_factory.mktemp("recordings")
    shutil.copyfile(flight / "run.mcap", folder / "a.mcap")
    shutil.copyfile(flight / "run.mcap", folder / "b.mcap")
    _rewrite_with_override(flight / "run.mcap", folder / "c-tampered.mcap",
                           "tasks.command.params.learned=false")
    return folder


def test_a_replay_set_lists_the_recordings_that_diverge(recordings: Path, tmp_path: Path) -> None:
    with open_client(workers=2) as client:
        result = run_replay_set(str(recordings), tmp_path, client)
        stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "replays").glob("*.json")}
        again = run_replay_set(str(recordings / "*.mcap"), tmp_path, client)
    assert [Path(r["recording"]).name for r in result.results] == [
        "a.mcap", "b.mcap", "c-tampered.mcap"]
    a, b, c = result.results
    assert a["verdict"] == b["verdict"] == "identical" and a["bit_exact"]
    assert a["compared"] > 10_000 and a["digest"] == b["digest"]
    assert [Path(r["recording"]).name for r in result.diverged] == ["c-tampered.mcap"]
    assert c["first_divergence"].startswith("t = ") and "'command'" in c["first_divergence"]
    assert not result.ok and "DIVERGED" in result.summary()
    assert again.results == result.results
    assert len(stored) == 2  # a and b have the same bytes: one verdict
    assert {p: p.stat().st_mtime_ns for p in stored} == stored  # not judged again
    assert json.loads((tmp_path / "replays.json").read_text())["diverged"] == [c["recording"]]


def test_a_replay_set_needs_recordings(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no recordings"):
        find_recordings(str(tmp_path / "*.mcap"))


def test_a_recording_that_cannot_be_replayed_is_named_in_one_error(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "broken.mcap").write_bytes(b"not an mcap file")
    with open_client(workers=1) as client, pytest.raises(ReplayFailed, match=r"broken\.mcap: "):
        run_replay_set(str(folder), tmp_path / "out", client)
    assert not list((tmp_path / "out" / "replays").glob("*.json"))
