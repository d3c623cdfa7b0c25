"""Opening a recording that is missing, torn or corrupt: one error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcap.writer import Writer

from hil import cli
from hil.record import pack_frames
from hil.record.reader import RecordingError, open_recording
from hil.record.recorder import MESSAGE_ENCODING


def _write(path: Path, channel_id: int | None = None) -> None:
    """A one-message recording; ``channel_id`` puts its message on an undeclared channel."""
    with path.open("wb") as f:
        writer = Writer(f)
        writer.start()
        declared = writer.register_channel("out.test", MESSAGE_ENCODING, 0)
        writer.add_message(declared if channel_id is None else channel_id, 1,
                           pack_frames([b"h", b"a"]), 1)
        writer.finish()


def test_a_whole_file_opens(tmp_path: Path) -> None:
    _write(tmp_path / "ok.mcap")
    assert [m.frames for m in open_recording(tmp_path / "ok.mcap").messages] == \
        [(b"out.test", b"h", b"a")]


@pytest.mark.parametrize("keep", [0, 5, 12, 60])
def test_a_torn_file_names_itself(tmp_path: Path, keep: int) -> None:
    _write(tmp_path / "ok.mcap")
    torn = tmp_path / "torn.mcap"
    torn.write_bytes((tmp_path / "ok.mcap").read_bytes()[:keep])
    with pytest.raises(RecordingError, match=f"^{torn}: not a complete MCAP file"):
        open_recording(torn)


def test_a_message_on_an_undeclared_channel(tmp_path: Path) -> None:
    _write(tmp_path / "bad.mcap", channel_id=7)
    with pytest.raises(RecordingError, match="channel 7, which no channel record declares"):
        open_recording(tmp_path / "bad.mcap")


def test_compare_refuses_a_missing_recording(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "ok.mcap")
    missing = tmp_path / "missing.mcap"
    assert cli.main(["compare", str(tmp_path / "ok.mcap"), str(missing)]) == 2
    assert f"flightai hil compare: error: {missing}: " in capsys.readouterr().err


def test_recover_refuses_a_missing_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.mcap"
    assert cli.main(["recover", str(missing), str(tmp_path / "fixed.mcap")]) == 2
    assert f"flightai hil recover: error: [Errno 2] No such file or directory: '{missing}'" \
        in capsys.readouterr().err
