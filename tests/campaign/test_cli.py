"""``flightai hil campaign|case|qualify``: bad input is refused with one clear line, before any
cluster starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import cli
from hil.campaign.cases import CampaignSpec
from hil.campaign.store import ResultsStore


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = cli.main(argv)
    return status, capsys.readouterr().err


def test_a_missing_mission_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(["campaign", "--mission", str(tmp_path / "nope.toml"), "--out",
                        str(tmp_path / "out")], capsys)
    assert status == 1 and "flightai hil campaign: error:" in err and "nope.toml" in err


def test_a_bad_override_names_its_key(mission: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(["campaign", "--mission", str(mission), "--set",
                        "tasks.guidance.period_ms=15", "--out", str(tmp_path / "out")], capsys)
    assert status == 1 and "tasks[" in err and "period_ms" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_campaign_is_refused(mission: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ResultsStore(tmp_path, CampaignSpec.from_file(mission, entropy=1).manifest())
    status, err = _run(["campaign", "--mission", str(mission), "--seed", "2", "--out",
                        str(tmp_path)], capsys)
    assert status == 1 and "entropy: stored 1, this run 2" in err


def test_case_counts_must_be_positive(mission: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["campaign", "--mission", str(mission), "--cases", "0", "--out", str(tmp_path)])
    assert "expected an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["campaign", "--seed", "-1", "--out", "o"], ["qualify", "c.onnx", "--role", "guidance",
                                                 "--seed", "-1", "--out", "o"],
    ["case", "--seed-entropy", "-1", "--spawn-key", "0"],
    ["case", "--seed-entropy", "1", "--spawn-key", "-1"]])
def test_seeds_and_spawn_keys_must_be_non_negative(argv: list[str], mission: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--mission", str(mission)])
    assert "expected an integer >= 0, got -1" in capsys.readouterr().err


def test_an_empty_replay_set_and_a_bad_tolerance_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(["campaign", "--recordings", str(tmp_path), "--out", str(tmp_path)],
                       capsys)
    assert status == 1 and "no recordings" in err
    (tmp_path / "a.mcap").write_bytes(b"")
    status, err = _run(["campaign", "--recordings", str(tmp_path), "--tolerance", "x",
                        "--out", str(tmp_path)], capsys)
    assert status == 1 and "expected SIGNAL=ABS" in err


def test_qualify_refuses_a_missing_candidate(mission: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run(["qualify", str(tmp_path / "none.onnx"), "--role", "guidance",
                        "--mission", str(mission), "--out", str(tmp_path)], capsys)
    assert status == 1 and "none.onnx" in err
