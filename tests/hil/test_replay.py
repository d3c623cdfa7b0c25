"""Fast replay of a recorded demo flight: bit-exact outputs, divergence reports, comparisons."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from flightai.sched.io import Publication
from hil import cli, demo
from hil.record import Recording
from hil.replay import Tolerance, compare, recorded_publications, replay

MISSIONS = Path(__file__).resolve().parents[2] / "models" / "ltd1"
GNET = "821c1f34b4ff42813911129afc156092b975a4e8ba69d4ac4252fa5500f43fba"

pytestmark = pytest.mark.slow


def _fly(folder: Path) -> Path:
    path = folder / "run.mcap"
    status = demo.main(["--config", "l2", "--nominal", "--record", str(path),
                        "--out", str(folder)])
    assert status == 0
    return path


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nominal L2 demo flight recorded once: the folder with run.mcap and outcome.json."""
    folder = tmp_path_factory.mktemp("flight")
    _fly(folder)
    return folder


@pytest.fixture(scope="module")
def recording(flight: Path) -> Recording:
    return Recording(flight / "run.mcap")


def test_fast_replay_reproduces_the_recorded_outputs_bit_for_bit(
        flight: Path, recording: Recording) -> None:
    result = replay(recording, workers=1)
    recorded = recorded_publications(recording)
    comparison = compare(recorded, result.publications)
    assert comparison.verdict == "identical", comparison.summary()
    assert comparison.compared == len(recorded) == len(result.publications) > 10_000
    outcome = json.loads((flight / "outcome.json").read_text())
    assert result.digest == outcome["runtime_digest"] == outcome["digest"]
    assert result.speed > 1.0


def test_replay_command_with_4_workers_is_bit_exact_too(
        flight: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", str(flight / "run.mcap"), "--workers", "4"]) == 0
    out = capsys.readouterr().out
    outcome = json.loads((flight / "outcome.json").read_text())
    assert f"output digest {outcome['runtime_digest']}" in out
    assert "identical (bit-exact)" in out


def _perturbed_mission(tmp_path: Path) -> Path:
    """A copy of the L2 mission whose G-Net has one weight matrix scaled by 1 + 1e-3."""
    folder = tmp_path / "ltd1"
    shutil.copytree(MISSIONS, folder, ignore=shutil.ignore_patterns("results"))
    model = onnx.load(folder / "gnet.onnx")
    w1 = next(i for i in model.graph.initializer if i.name == "w1")
    w1.CopyFrom(numpy_helper.from_array(
        (numpy_helper.to_array(w1) * np.float32(1 + 1e-3)).astype(np.float32), "w1"))
    onnx.save(model, folder / "gnet.onnx")
    digest = hashlib.sha256((folder / "gnet.onnx").read_bytes()).hexdigest()
    mission = folder / "l2.toml"
    mission.write_text(mission.read_text().replace(GNET, digest))
    return mission


def test_a_changed_model_yields_a_divergence_report(recording: Recording, tmp_path: Path) -> None:
    result = replay(recording, mission=_perturbed_mission(tmp_path))
    recorded = recorded_publications(recording)
    comparison = compare(recorded, result.publications)
    first = comparison.first
    assert comparison.verdict == "DIVERGED" and first is not None
    assert (first.task, first.what, first.signal) == ("guidance", "value", "guidance.accel_cmd")
    guidance = [(r, p) for r, p in zip(recorded, result.publications, strict=True)
                if r.task == "guidance"]
    t_first = next(r.t_ns for r, p in guidance if r.outputs[0][1].tobytes()
                   != p.outputs[0][1].tobytes())
    assert first.t_ns == t_first > 0
    assert len(first.index) == 2 and first.recorded != first.replayed
    assert comparison.max_abs_diff["guidance.accel_cmd"] > 0
    assert re.search(r"t = \d+ ns, task 'guidance', signal 'guidance.accel_cmd' element \[0, \d\]",
                     first.describe())


def test_two_recordings_of_the_same_seed_compare_identical(
        flight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    again = _fly(tmp_path)
    assert cli.main(["compare", str(flight / "run.mcap"), str(again)]) == 0
    assert "identical (bit-exact)" in capsys.readouterr().out


def _publication(t_ns: int, task: str, value: list[float]) -> Publication:
    return Publication(t_ns, task, t_ns - 10, (("x", np.array([value], np.float32)),), "ok")


def test_tolerances_missing_and_extra_publications() -> None:
    recorded = [_publication(0, "a", [1.0, 2.0]), _publication(10, "a", [1.0, 2.0]),
                _publication(10, "b", [0.0, 0.0])]
    replayed = [_publication(0, "a", [1.0, 2.001]), _publication(10, "a", [1.0, 2.0]),
                _publication(20, "b", [0.0, 0.0])]
    loose = compare(recorded, replayed, bit_exact=False, tolerances={"*": Tolerance(abs=0.01)})
    counts = (loose.compared, loose.equal, loose.within, loose.missing, loose.extra)
    assert counts == (2, 1, 1, 1, 1)
    assert loose.first is not None and (loose.first.what, loose.first.t_ns) == ("missing", 10)
    assert loose.max_abs_diff["x"] == pytest.approx(0.001, rel=1e-3)
    tight = compare(recorded, replayed, bit_exact=False,
                    tolerances=dict([Tolerance.parse("x=0,1e-4")]))
    assert tight.first is not None and (tight.first.t_ns, tight.first.index) == (0, (0, 1))
    assert compare(recorded, recorded[:2] + replayed[2:]).first == loose.first
    assert compare(recorded, recorded).verdict == "identical"
