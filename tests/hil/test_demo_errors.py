"""The demo fails fast and says why when the runtime cannot start."""

from __future__ import annotations

from hil import demo


def test_a_runtime_that_exits_before_ready_is_reported_at_once(tmp_path, capsys) -> None:
    status = demo.main(["--config", "b1", "--out", str(tmp_path),
                        "--set", "tasks.nav.params.map_sha256=00"])
    assert status == 2
    err = capsys.readouterr().err
    assert "the runtime exited before it was READY" in err
    assert "SHA-256 is 08445e91" in err and "the config expects 00" in err


def test_a_recording_that_cannot_be_created_is_one_error(tmp_path, capsys) -> None:
    target = tmp_path / "missing" / "run.mcap"
    status = demo.main(["--config", "b1", "--out", str(tmp_path), "--record", str(target)])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flightai demo: error: cannot record to {target}: ")
    assert not target.exists()
