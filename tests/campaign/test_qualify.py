"""Qualification on a real 2-worker cluster: a degraded G-Net is judged worse, G-Net itself
equivalent to the flight baseline; a model with the wrong signature is rejected unflown."""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from hil.campaign.cluster import open_client
from hil.campaign.qualify import qualify, scorecard_path

pytestmark = pytest.mark.slow

CASES = 6  # the fewest pairs with a 95 % sign-test interval and a McNemar p < 0.05
BIAS_MPS2 = (0.5, 0.5, 0.0)


def _degraded(mission: Path, folder: Path) -> Path:
    """G-Net steering off by 0.7 m/s² horizontally: inside the output guard (±20), beyond
    the assurance threshold (0.5 m/s² from ZEM/ZEV for 0.5 s)."""
    model = onnx.load(mission.parent / "gnet.onnx")
    offset = next(i for i in model.graph.initializer if i.name == "accel_offset")
    shifted = numpy_helper.to_array(offset) + np.float32(BIAS_MPS2)
    offset.CopyFrom(numpy_helper.from_array(shifted.astype(np.float32), "accel_offset"))
    path = folder / "gnet-degraded.onnx"
    onnx.save(model, path)
    return path


def test_a_degraded_guidance_model_is_worse_and_the_baseline_equivalent_to_itself(
        mission: Path, tmp_path: Path) -> None:
    degraded = _degraded(mission, tmp_path)
    itself = tmp_path / "gnet-copy.onnx"
    shutil.copyfile(mission.parent / "gnet.onnx", itself)
    out = tmp_path / "qualify"
    with open_client(workers=2) as client:
        bad = qualify(degraded, "guidance", mission, out, lambda: nullcontext(client),
                      cases=CASES, entropy=3)
        same = qualify(itself, "guidance", mission, out, lambda: nullcontext(client),
                       cases=CASES, entropy=3)
    assert all(c["ok"] is not False for c in bad["contract"] + same["contract"])
    assert (bad["measures"]["deviation_from_zemzev_mps2"]["rms"]
            > 0.5 > same["measures"]["deviation_from_zemzev_mps2"]["rms"])
    assert bad["verdict"] == "worse", json.dumps(bad["criteria"], indent=1)
    latched = next(c for c in bad["criteria"] if c["field"] == "learned_guidance")
    assert (latched["baseline"], latched["candidate"]) == (CASES, 0)
    assert latched["verdict"] == "worse" and latched["p_value"] < 0.05
    assert same["verdict"] == "equivalent", json.dumps(same["criteria"], indent=1)
    for criterion in same["criteria"]:
        assert criterion["verdict"] in ("equivalent", "no difference")
        if not criterion["binary"]:
            assert criterion["ci95"] == [0.0, 0.0]
    assert same["campaigns"]["baseline"] == bad["campaigns"]["baseline"]  # one baseline, shared
    assert len({bad["campaigns"][k] for k in bad["campaigns"]}) == 2
    for card in (bad, same):
        stored = json.loads(scorecard_path(out, card["sha256"], "json").read_text())
        assert stored["verdict"] == card["verdict"]
        assert card["verdict"].upper() in scorecard_path(out, card["sha256"], "html").read_text()


def test_a_model_with_the_wrong_signature_is_rejected_before_any_flight(
        mission: Path, tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("state", onnx.TensorProto.FLOAT, [1, 6])
    y = helper.make_tensor_value_info("accel", onnx.TensorProto.FLOAT, [1, 6])
    graph = helper.make_graph([helper.make_node("Identity", ["state"], ["accel"])], "g", [x], [y])
    wrong = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), wrong)
    def no_cluster() -> nullcontext[None]:
        raise AssertionError("a rejected model must not start a cluster")

    card = qualify(wrong, "guidance", mission, tmp_path / "q", no_cluster, cases=CASES)
    assert card["verdict"] == "rejected"
    failed = [c for c in card["contract"] if c["ok"] is False]
    assert [c["name"] for c in failed] == ["loads with the slot's signature and options"]
    assert "accel" in failed[0]["detail"]
    assert not (tmp_path / "q" / "baseline").exists()
