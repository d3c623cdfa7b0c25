"""Timing admission: a real profile of ltd1-lite made by ``flightai profile``, then ``check``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from flightai.cli import main
from flightai.config import load_mission

ROOT = Path(__file__).resolve().parents[2]
LITE = ROOT / "examples" / "ltd1-lite" / "mission.toml"


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "profile.json"
    done = subprocess.run([sys.executable, "-m", "flightai", "profile", str(LITE), "--runs", "300",
                           "--models-only", "-o", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "camera_monitor: p50" in done.stdout
    return out


def _check(capsys: pytest.CaptureFixture[str], profile: Path, *sets: str) -> tuple[int, str]:
    argv = ["check", str(LITE), "--profile", str(profile)]
    for item in sets:
        argv += ["--set", item]
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _needed_us(profile: Path, model: str) -> int:
    """p99.9 plus the mission's default margin (20 % + 50 us), rounded up to whole us."""
    p999_ns = int(json.loads(profile.read_text())["models"][model]["timing"]["p999_ns"])
    margin = load_mission(LITE).runtime.admission
    return math.ceil((p999_ns + margin.margin_ns(p999_ns)) / 1000)


def test_the_profile_holds_each_model_its_provider_hash_and_the_board(profile_path: Path) -> None:
    data = json.loads(profile_path.read_text())
    config = load_mission(LITE)
    assert data["format"] == "flightai-profile/1" and data["mission"] == "ltd1-lite"
    assert set(data["models"]) == {"guidance_mlp", "camera_monitor"} and data["tasks"] == {}
    for model in config.models:
        entry = data["models"][model.name]
        t = entry["timing"]
        assert entry["sha256"] == model.sha256
        assert entry["running"] == ["CPUExecutionProvider"] and not entry["fallback"]
        assert entry["options"]["intra_op_threads"] == "1"
        assert t["runs"] == 300 and 0 < t["p50_ns"] <= t["p99_ns"] <= t["p999_ns"] <= t["max_ns"]
    assert {"cpu_arch", "cpu_model", "cpu_count", "onnxruntime",
            "onnxruntime_providers"} <= set(data["fingerprint"])


def test_a_too_tight_budget_is_refused_naming_the_task(
        capsys: pytest.CaptureFixture[str], profile_path: Path) -> None:
    needed = _needed_us(profile_path, "camera_monitor")
    status, out = _check(capsys, profile_path, f"tasks.camera_monitor.budget_us={needed - 1}",
                         f"tasks.guidance.budget_us={_needed_us(profile_path, 'guidance_mlp')}")
    assert status == 1
    problems = [line for line in out.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1, out  # guidance is admitted
    assert problems[0].startswith("  PROBLEM: task 'camera_monitor': budget_us ")
    assert "is below the profiled p99.9" in problems[0] and "plus margin" in problems[0]
    assert "FAILED: 1 problem(s)" in out


def test_a_budget_covering_p999_plus_margin_is_admitted(
        capsys: pytest.CaptureFixture[str], profile_path: Path) -> None:
    status, out = _check(
        capsys, profile_path,
        f"tasks.camera_monitor.budget_us={_needed_us(profile_path, 'camera_monitor')}",
        f"tasks.guidance.budget_us={_needed_us(profile_path, 'guidance_mlp')}")
    assert status == 0, out
    assert "timing admission (profile of 'ltd1-lite'):" in out
    assert "not compared (not in the profile)" in out  # the Python tasks: --models-only
    assert out.rstrip().endswith("OK: 5 tasks, 2 models, 7 signals")


def _edited(profile: Path, tmp_path: Path, edit: dict[str, object]) -> Path:
    data = json.loads(profile.read_text())
    for path, value in edit.items():
        node = data
        *keys, last = path.split("/")
        for key in keys:
            node = node[key]
        node[last] = value
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(("edit", "message"), [
    ({"fingerprint/cpu_model": "Cortex-A76"},
     "the profile was made on another board or build: cpu_model is 'Cortex-A76' in the profile"),
    ({"fingerprint/onnxruntime": "1.20.0"}, "onnxruntime is '1.20.0' in the profile"),
    ({"fingerprint/onnxruntime_providers": "CUDAExecutionProvider,CPUExecutionProvider"},
     "onnxruntime_providers is 'CUDAExecutionProvider,CPUExecutionProvider' in the profile"),
    ({"models/camera_monitor/sha256": "0" * 64},
     f"model 'camera_monitor': the profile timed SHA-256 {'0' * 64}, the config says"),
    ({"models/guidance_mlp/running": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
     "model 'guidance_mlp': the profile ran on CUDAExecutionProvider, CPUExecutionProvider, "
     "this board runs CPUExecutionProvider"),
])
def test_a_profile_that_does_not_apply_here_is_refused(
        capsys: pytest.CaptureFixture[str], profile_path: Path, tmp_path: Path,
        edit: dict[str, object], message: str) -> None:
    status, out = _check(capsys, _edited(profile_path, tmp_path, edit))
    assert status == 1 and message in out, out
    assert "budgets not compared: the profile does not apply" in out


def test_a_changed_session_option_is_refused(capsys: pytest.CaptureFixture[str],
                                             profile_path: Path) -> None:
    status, out = _check(capsys, profile_path, "models.camera_monitor.intra_op_threads=2")
    assert status == 1
    assert ("model 'camera_monitor': option intra_op_threads was '1' when profiled, is '2' "
            "now") in out


def test_an_unreadable_profile_is_refused(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    status, out = _check(capsys, bad)
    assert status == 1 and "expected format 'flightai-profile/1', got 'something-else'" in out


def test_a_signed_bundle_is_profiled_and_admitted_as_installed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys, state = tmp_path / "keys", tmp_path / "state"
    bundle, profile = tmp_path / "lite.bundle", tmp_path / "bundle-profile.json"
    assert main(["bundle", "keygen", "ground", "--dir", str(keys)]) == 0
    assert main(["bundle", "build", str(LITE), "--key", str(keys / "ground.key"),
                 "--version", "1", "-o", str(bundle)]) == 0
    source = ["--bundle", str(bundle), "--trust", str(keys / "ground.pub"),
              "--state-dir", str(state)]
    assert main(["profile", *source, "--runs", "200", "--models-only", "-o", str(profile)]) == 0
    capsys.readouterr()
    budgets = [f"tasks.{task}.budget_us={_needed_us(profile, model)}"
               for task, model in (("camera_monitor", "camera_monitor"),
                                   ("guidance", "guidance_mlp"))]
    argv = ["check", *source, "--profile", str(profile)]
    for item in budgets:
        argv += ["--set", item]
    status = main(argv)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "timing admission (profile of 'ltd1-lite'):" in out and "OK (budget_us)" in out


def test_a_profile_that_cannot_be_written_is_one_error_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "missing" / "profile.json"
    assert main(["profile", str(LITE), "--runs", "1", "--models-only", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err and "Traceback" not in err
