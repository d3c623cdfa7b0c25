"""Board profiles in deploy/boards: each applies to the LTD-1 mission and validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from flightai.cli import main
from flightai.config import load_mission
from flightai.config.board import load_board
from flightai.config.overrides import apply_overrides
from flightai.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
L2 = ROOT / "models" / "ltd1" / "l2.toml"
BOARDS = sorted((ROOT / "deploy" / "boards").glob("*.toml"))
CPU_BOARDS = [b for b in BOARDS if b.stem != "jetson-orin"]
TRT = "TensorrtExecutionProvider"


def test_there_is_a_profile_for_each_kind_of_board() -> None:
    assert [b.stem for b in BOARDS] == ["arm64-pi5", "jetson-orin", "x86-dev"]


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.stem)
def test_each_board_profile_validates_on_the_ltd1_mission(board: Path) -> None:
    profile = load_board(board)
    config = load_mission(L2, profile.overrides)
    assert profile.environment["OPENBLAS_NUM_THREADS"] == "1"
    assert config.runtime.process.cpu_affinity
    for model in config.models:
        assert not model.allow_fallback and model.intra_op_threads == 1 and not model.spinning


@pytest.mark.parametrize("board", CPU_BOARDS, ids=lambda b: b.stem)
def test_flightai_check_passes_with_each_cpu_board(
        board: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(L2), "--board", str(board)]) == 0, capsys.readouterr().out


def test_the_jetson_profile_pins_tensorrt_and_refuses_to_fall_back_here(
        capsys: pytest.CaptureFixture[str]) -> None:
    board = ROOT / "deploy" / "boards" / "jetson-orin.toml"
    config = load_mission(L2, load_board(board).overrides)
    gnet = config.model("gnet")
    assert gnet.providers[0] == TRT
    assert gnet.options_for(TRT)["trt_engine_cache_path"] == "/var/lib/flightai/trt-engines"
    assert gnet.options_for("CUDAExecutionProvider")["cudnn_conv_algo_search"] == "DEFAULT"
    if TRT in ort.get_available_providers():
        pytest.skip("this machine has TensorRT: the refusal below is for CPU-only machines")
    assert main(["check", str(L2), "--board", str(board)]) == 1
    out = capsys.readouterr().out
    assert f"model 'gnet': provider(s) {TRT}, CUDAExecutionProvider not available" in out
    assert "allow_fallback = false" in out


def test_board_environment_warnings() -> None:
    board = load_board(ROOT / "deploy" / "boards" / "x86-dev.toml")
    assert board.environment_warnings({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}) == []
    assert board.environment_warnings({"OPENBLAS_NUM_THREADS": "4"}) == [
        "board x86-dev: environment OPENBLAS_NUM_THREADS='1' expected, found '4'",
        "board x86-dev: environment OMP_NUM_THREADS='1' expected, found it unset"]


def test_a_board_file_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[bus]\nsensors = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: bus: expected a section of a board"):
        load_board(bad)
    bad.write_text("[models.nosuch]\nintra_op_threads = 1\n")
    with pytest.raises(ConfigError, match=r"--set models.nosuch: expected an index or the name"):
        load_mission(L2, load_board(bad).overrides)


def test_a_star_override_reaches_every_element() -> None:
    doc: dict[str, Any] = {"models": [{"name": "a", "x": 1}, {"name": "b"}], "runtime": {}}
    out = apply_overrides(doc, ["models.*.x=2", "models.b.y=[1, 2]"])
    assert out["models"] == [{"name": "a", "x": 2}, {"name": "b", "x": 2, "y": [1, 2]}]
    assert doc["models"][0]["x"] == 1  # the input is not changed


@pytest.mark.parametrize(("text", "message"), [
    ('board = "x"\n', r"bad.toml: board: expected a table, got 'x' \(string\)"),
    ("models = 3\n", r"bad.toml: models: expected a table, got 3"),
    ("[models]\nguidance = 3\n", r"bad.toml: models.guidance: expected a table, got 3"),
    ("[runtime]\nx = 1979-05-27\n", r"bad.toml: runtime.x: expected a string, number, boolean"),
])
def test_a_board_file_of_the_wrong_shape_is_a_config_error(tmp_path: Path, text: str,
                                                           message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_board(bad)
