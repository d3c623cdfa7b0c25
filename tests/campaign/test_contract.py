"""Contract checks of both roles: the reference models pass; a perception model that is
confident about an empty image fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from flightai.config.loader import load_mission
from hil.campaign.contract import check_contract


@pytest.mark.parametrize(("role", "model"), [("guidance", "gnet.onnx"),
                                             ("perception", "trn_corrnet.onnx")])
def test_the_reference_models_meet_their_contract(mission: Path, role: str, model: str) -> None:
    checks, measures = check_contract(mission.parent / model, role, load_mission(mission))
    # The latency check's verdict depends on this machine's load: only its measurement is
    # checked here (a test never asserts a wall-clock time; bench/ measures).
    latency = [c for c in checks if c.name == "latency p99 within the task budget"]
    assert len(latency) == 1
    assert [c.name for c in checks if c.ok is False and c not in latency] == []
    assert sum(c.ok is True for c in checks if c not in latency) >= 8
    assert 0 < measures["latency_us"]["p50"] <= measures["latency_us"]["p99"]


def test_a_perception_model_confident_about_nothing_fails(mission: Path, tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("trn_input", onnx.TensorProto.FLOAT, [1, 2, 64, 64])
    y = helper.make_tensor_value_info("fix", onnx.TensorProto.FLOAT, [1, 3])
    always = numpy_helper.from_array(np.array([[0.0, 0.0, 0.9]], np.float32), "always")
    nodes = [helper.make_node("ReduceSum", ["trn_input"], ["total"], keepdims=0),
             helper.make_node("Mul", ["total", "zero"], ["nothing"]),
             helper.make_node("Add", ["always", "nothing"], ["fix"])]
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[always, zero])
    path = tmp_path / "blind.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    checks, _ = check_contract(path, "perception", load_mission(mission))
    failed = [c.name for c in checks if c.ok is False]
    assert failed == ["all-zero input gives confidence < 0.25"]


def test_a_file_that_is_not_onnx_is_rejected_not_raised(mission: Path, tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"not a protobuf \xff\xff")
    checks, measures = check_contract(path, "guidance", load_mission(mission))
    assert [c.name for c in checks if c.ok is False] == [
        "an ONNX model", "loads with the slot's signature and options"]
    assert "latency_us" not in measures
