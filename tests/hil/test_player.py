"""The player: in-process and over the bus, fast, lockstep and real time, windows, loop, step."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hil import cli, demo
from hil.record import Recording
from hil.replay import compare, recorded_publications
from hil.replay.bus import ChildRuntime, child_mission
from hil.replay.control import FrameControl, Stepper
from hil.replay.player import (
    BusTarget,
    Mode,
    compare_replay,
    in_window,
    recorded_overrides,
    replay,
)

MISSIONS = Path(__file__).resolve().parents[2] / "models" / "ltd1"
S = 1_000_000_000


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nominal L2 demo flight recorded once: the folder with run.mcap and outcome.json."""
    folder = tmp_path_factory.mktemp("flight")
    assert demo.main(["--config", "l2", "--nominal", "--record", str(folder / "run.mcap"),
                      "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def recording(flight: Path) -> Recording:
    return Recording(flight / "run.mcap")


def _runtime_digest(flight: Path) -> str:
    digest: str = json.loads((flight / "outcome.json").read_text())["runtime_digest"]
    return digest


@pytest.mark.slow
def test_lockstep_in_process_with_4_workers_is_bit_exact(flight: Path,
                                                         recording: Recording) -> None:
    # fast mode with 1 and 4 workers: tests/hil/test_replay.py
    result = replay(recording, workers=4, mode=Mode.LOCKSTEP)
    comparison = compare_replay(recording, result)
    assert comparison.verdict == "identical", comparison.summary()
    assert comparison.compared == len(recorded_publications(recording)) > 10_000
    assert result.digest == _runtime_digest(flight)
    assert result.frames == result.mission_ns // (10 * 1_000_000)


@pytest.mark.slow
def test_fast_and_lockstep_over_the_bus_into_a_child_runtime_are_bit_exact(
        flight: Path, recording: Recording) -> None:
    result = replay(recording, mode=Mode.FAST, bus=BusTarget(), workers=4)
    comparison = compare_replay(recording, result)
    assert comparison.verdict == "identical", comparison.summary()
    assert comparison.compared == len(recorded_publications(recording))
    assert result.digest == _runtime_digest(flight)
    assert result.target.startswith("bus")
    lockstep = replay(recording, mode=Mode.LOCKSTEP, bus=BusTarget(), stop_ns=20 * S)
    assert compare_replay(recording, lockstep).verdict == "identical"
    same = compare(in_window(result.publications, 0, 20 * S), lockstep.publications)
    assert same.verdict == "identical" and same.compared > 0


@pytest.mark.slow
def test_replay_into_a_running_runtime_by_its_endpoints(recording: Recording,
                                                        tmp_path: Path) -> None:
    mission = child_mission(recording, None)
    with ChildRuntime(mission, recorded_overrides(recording), None,
                      tmp_path / "runtime.log") as runtime:
        result = replay(recording, mode=Mode.LOCKSTEP, stop_ns=S,
                        bus=BusTarget(endpoints=runtime.endpoints))
        assert runtime.alive()  # the player leaves a runtime it did not start running
    comparison = compare_replay(recording, result)
    assert comparison.verdict == "identical", comparison.summary()
    assert result.frames == 100 and comparison.compared > 0
    assert result.target == f"bus ({runtime.endpoints[0]})"


@pytest.mark.slow
def test_real_time_at_rate_20_on_a_window_completes_and_matches(
        flight: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["replay", str(flight / "run.mcap"), "--mode", "realtime", "--rate", "20",
                       "--start", "10", "--stop", "11.5", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert re.search(r"realtime in-process, 10 s to 11\.5 s: 1150 frames", out), out
    compared = int(re.search(r"identical \(bit-exact\): (\d+) publications compared", out)[1])
    assert compared == len(in_window(recorded_publications(Recording(flight / "run.mcap")),
                                     10 * S, 11_500_000_000)) > 0


@pytest.mark.slow
def test_real_time_over_the_bus_matches(recording: Recording) -> None:
    result = replay(recording, mode=Mode.REAL_TIME, rate=20, stop_ns=S, bus=BusTarget())
    comparison = compare_replay(recording, result)
    assert comparison.verdict == "identical", comparison.summary()
    assert result.frames == 100 and comparison.compared > 0


@pytest.mark.slow
def test_window_and_loop(flight: Path, recording: Recording,
                         capsys: pytest.CaptureFixture[str]) -> None:
    result = replay(recording, start_ns=2 * S, stop_ns=3 * S)
    assert (result.start_ns, result.mission_ns, result.frames) == (2 * S, 3 * S, 300)
    window = result.window()
    assert window and all(2 * S <= p.t_ns < 3 * S for p in window)
    assert compare_replay(recording, result).compared == len(window)
    assert cli.main(["replay", str(flight / "run.mcap"), "--stop", "0.5", "--loop", "2",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    digests = re.findall(r"pass (\d)/2: fast in-process, to 0\.5 s: 50 frames.*digest (\w+)", out)
    assert [n for n, _ in digests] == ["1", "2"] and digests[0][1] == digests[1][1]
    assert out.count("identical (bit-exact)") == 2


def _perturbed_gnet(folder: Path) -> tuple[Path, str]:
    """G-Net re-exported with one weight of its first layer changed by 1 %; path and SHA-256."""
    model = onnx.load(MISSIONS / "gnet.onnx")
    w1 = next(i for i in model.graph.initializer if i.name == "w1")
    weights = numpy_helper.to_array(w1).copy()
    weights.flat[0] *= np.float32(1.01)
    w1.CopyFrom(numpy_helper.from_array(weights, "w1"))
    path = folder / "gnet-perturbed.onnx"
    onnx.save(model, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("target", [[], ["--bus", "--mode", "lockstep", "--stop", "3"]],
                         ids=["in-process", "bus"])
def test_a_changed_model_yields_a_divergence_report(
        flight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        target: list[str]) -> None:
    path, sha256 = _perturbed_gnet(tmp_path)
    status = cli.main(["replay", str(flight / "run.mcap"), "--no-progress",
                       f"--set=models.gnet.file={path}", f"--set=models.gnet.sha256={sha256}",
                       *target])
    out = capsys.readouterr().out
    assert status == 1, out
    first = re.search(r"first divergence: t = (\d+) ns, task 'guidance', signal "
                      r"'guidance.accel_cmd' element \[0, \d\]: value recorded (\S+), "
                      r"replayed (\S+)", out)
    assert first is not None, out
    assert int(first[1]) < 3 * S and first[2] != first[3]
    assert "DIVERGED (bit-exact)" in out


def test_bad_player_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for options, message in [(["--rate", "2"], "--rate applies to --mode realtime"),
                             (["--loop", "0"], "--loop: expected at least 1, got 0"),
                             (["--endpoints", "a", "b", "c", "--loop", "2"], "--loop with"),
                             (["--start", "2", "--stop", "1"], "window: expected")]:
        assert cli.main(["replay", "unused.mcap", *options]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["replay", "missing.mcap"]) == 2
    assert "error: missing.mcap: " in capsys.readouterr().err


def test_stepper_runs_frames_as_told_and_never_hangs() -> None:
    out = io.StringIO()
    stepper = Stepper(io.StringIO("\n3\nwhat\nq\n"), out)
    runs = [stepper.before_frame(t, t) for t in range(5)]
    assert runs == [True, True, True, True, False]
    assert "'what'?" in out.getvalue()
    ended = Stepper(io.StringIO("2\n"), io.StringIO())
    assert all(ended.before_frame(t, t) for t in range(10)) and ended.free
    read, write = os.pipe()  # a pipe nobody writes to: a silent CI stdin
    try:
        with os.fdopen(read) as silent:
            quiet = Stepper(silent, io.StringIO(), idle_timeout_s=0.05)
            assert quiet.before_frame(0, 0) and quiet.free
    finally:
        os.close(write)


def test_frame_control_steps_only_inside_the_window() -> None:
    stepper = Stepper(io.StringIO("q\n"), io.StringIO())
    control = FrameControl(10, start_ns=30, end_ns=100, stepper=stepper)
    assert [control.before_frame(t) for t in (0, 10, 20)] == [True, True, True]
    assert not control.before_frame(30) and control.quit and control.frames == 3


@pytest.mark.slow
def test_progress_bar_and_step_from_the_command_line(
        flight: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["replay", str(flight / "run.mcap"), "--stop", "0.3"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"t\s+0\.30 / 0\.30 s\s+30 frames", err), err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n2\nq\n"))
    assert cli.main(["replay", str(flight / "run.mcap"), "--step", "--start", "0.1"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("[step]") == 3
    assert "fast in-process, 0.1 s to 0.13 s (quit): 13 frames" in captured.out
