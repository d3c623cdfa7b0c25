"""The committed LTD-1 models: hashes, the model contract, golden outputs and behaviour.

onnxruntime, onnx and numpy only (PyTorch is build-time only). The models are
rebuilt by ``models/ltd1/build_gnet.py`` and ``models/ltd1/build_trn_corrnet.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from flightai.config.schema import ModelConfig, PortSpec
from flightai.infer.model_task import ModelTask
from tests.ltd1.onboard import load_onboard

MODELS = Path(__file__).resolve().parents[2] / "models" / "ltd1"
OPSET = 17
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Bernoulli", "Multinomial", "Dropout"}
# name: (file, card, inputs, outputs)
CONTRACT = {
    "gnet": ("gnet.onnx", "gnet.md", (PortSpec("state", "float32", (1, 6)),),
             (PortSpec("accel_cmd", "float32", (1, 3)),)),
    "trn_corrnet": ("trn_corrnet.onnx", "trn_corrnet.md",
                    (PortSpec("trn_input", "float32", (1, 2, 64, 64)),),
                    (PortSpec("fix", "float32", (1, 3)),)),
}
MIN_CONFIDENCE = 0.25  # NavFilter's default: fixes below it are ignored


def manifest() -> dict[str, str]:
    """File name -> SHA-256 from MODELS.sha256 (``sha256sum`` format)."""
    entries = {}
    for line in (MODELS / "MODELS.sha256").read_text().splitlines():
        digest, name = line.split()
        entries[name.lstrip("*")] = digest
    return entries


def model_config(name: str) -> ModelConfig:
    """The model entry a mission config would declare (pinned options as in l2.toml)."""
    file, _, inputs, outputs = CONTRACT[name]
    return ModelConfig(name=name, file=MODELS / file, sha256=manifest()[file],
                       inputs=inputs, outputs=outputs)


def session(name: str) -> ort.InferenceSession:
    """A session with the runtime's pinned options: CPU, one thread, all optimisations."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.use_deterministic_compute = True
    return ort.InferenceSession(str(MODELS / CONTRACT[name][0]), sess_options=so,
                                providers=["CPUExecutionProvider"])


def golden(name: str) -> dict[str, np.ndarray]:
    with np.load(MODELS / "golden" / f"{name}.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_file_matches_manifest_and_card(name: str) -> None:
    file, card, _, _ = CONTRACT[name]
    digest = hashlib.sha256((MODELS / file).read_bytes()).hexdigest()
    assert manifest()[file] == digest
    assert digest in (MODELS / card).read_text()
    metrics = json.loads((MODELS / f"{name}.metrics.json").read_text())
    assert metrics["sha256"] == digest


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_model_meets_the_contract(name: str) -> None:
    file, _, inputs, outputs = CONTRACT[name]
    model = onnx.load(str(MODELS / file))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert not model.graph.node or all(n.domain == "" for n in model.graph.node)
    assert not {n.op_type for n in model.graph.node} & RANDOM_OPS
    for declared, actual in ((inputs, model.graph.input), (outputs, model.graph.output)):
        assert [p.name for p in declared] == [v.name for v in actual]
        for port, value in zip(declared, actual, strict=True):
            tensor = value.type.tensor_type
            assert tensor.elem_type == onnx.TensorProto.FLOAT
            assert tuple(d.dim_value for d in tensor.shape.dim) == port.shape
            assert all(d.HasField("dim_value") for d in tensor.shape.dim)  # static
    float_inits = [i for i in model.graph.initializer if i.data_type != onnx.TensorProto.INT64]
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in float_inits)
    assert not any(i.HasField("data_location") and i.data_location == onnx.TensorProto.EXTERNAL
                   for i in model.graph.initializer)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_verified_loader_reproduces_golden(name: str) -> None:
    task = ModelTask.load(model_config(name))
    assert task.report.sha256 == manifest()[CONTRACT[name][0]]
    data = golden(name)
    in_port, out_port = CONTRACT[name][2][0].name, CONTRACT[name][3][0].name
    for x, expected in zip(data["input"], data["output"], strict=True):
        out = task.run({in_port: x})[out_port]
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_golden_bit_exact_across_sessions(name: str) -> None:
    data = golden(name)
    first, second = session(name), session(name)
    in_port = CONTRACT[name][2][0].name
    for x, expected in zip(data["input"], data["output"], strict=True):
        a = first.run(None, {in_port: x})[0]
        assert np.array_equal(a, second.run(None, {in_port: x})[0])
        np.testing.assert_allclose(a, expected, rtol=0, atol=1e-6)


def test_gnet_agrees_with_zemzev_within_the_measured_rms() -> None:
    guidance = load_onboard("guidance")
    data = golden("gnet")
    measured = json.loads((MODELS / "gnet.metrics.json").read_text())
    recorded = measured["deviation_from_zemzev_mps2"]["golden_set"]
    sess = session("gnet")
    dev = []
    for x in data["input"]:
        learned = sess.run(None, {"state": x})[0]
        reference = guidance.zemzev_guidance({"state": x})["accel_cmd"]
        dev.append(float(np.linalg.norm(learned.astype(np.float64) - reference)))
    rms = float(np.sqrt(np.mean(np.square(dev))))
    assert len(dev) >= 100
    assert rms <= recorded["rms"] + 1e-6
    assert max(dev) < 0.5  # the runtime-assurance threshold
    overall = measured["deviation_from_zemzev_mps2"]["gnet_flown"]["rms"]
    assert rms < 0.2 and overall < 0.2  # well below the 0.5 m/s² threshold


def test_gnet_takes_physical_units() -> None:
    """At high gate the command is ZEM/ZEV's (about 0.5, 0, 0.65 m/s²), not a normalised value."""
    guidance = load_onboard("guidance")
    state = np.array([[-1000.0, 0.0, 2000.0, 15.0, 0.0, -30.0]], np.float32)
    learned = session("gnet").run(None, {"state": state})[0]
    reference = guidance.zemzev_guidance({"state": state})["accel_cmd"]
    np.testing.assert_allclose(learned, reference, atol=0.1)


def _synthetic_relief(rng: np.random.Generator, size: int, elevation_deg: float,
                      azimuth_deg: float) -> np.ndarray:
    """Lambertian relief of a random crater field (1 px = 1 map pixel), no shadows."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    h = np.zeros((size, size))
    for _ in range(size * size // 150):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(1.5, 7.0)
        rho2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2
        rim = 0.1 * r
        h += np.where(rho2 < 1.0, rim - 0.5 * r * (1.0 - rho2),
                      rim * np.clip((4.0 - rho2) / 3.0, 0.0, 1.0) / np.maximum(rho2, 1.0) ** 1.5)
    gy, gx = np.gradient(h)
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    sun = np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)
    return np.clip((-gx * sun[0] - gy * sun[1] + sun[2]) / np.sqrt(1.0 + gx**2 + gy**2), 0, 1)


def _normalised(a: np.ndarray) -> np.ndarray:
    return ((a - a.mean()) / a.std()).astype(np.float32)


@pytest.mark.parametrize("offset", [(5, -3), (-9, 7), (0, 0)])
def test_trn_corrnet_recovers_a_known_offset(offset: tuple[int, int]) -> None:
    """Patch centred at prior + offset (flight sun 22°/60°), crop at the prior (map sun 30°/40°)."""
    dx, dy = offset
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    relief_map = _synthetic_relief(rng, 128, 30.0, 40.0)
    rng.bit_generator.state = state  # the same terrain under the flight sun
    relief_flight = _synthetic_relief(rng, 128, 22.0, 60.0)
    crop = relief_map[32:96, 32:96]
    patch = relief_flight[32 + dy:96 + dy, 32 + dx:96 + dx]
    pair = np.stack([_normalised(patch), _normalised(crop)])[None]
    fix = session("trn_corrnet").run(None, {"trn_input": pair})[0][0]
    assert abs(fix[0] - dx) < 0.5 and abs(fix[1] - dy) < 0.5
    assert fix[2] >= MIN_CONFIDENCE


def test_trn_corrnet_golden_pairs_are_real_fixes() -> None:
    """The golden pairs (mission terrain, one per scale) are matched within 1 px."""
    data = golden("trn_corrnet")
    err = np.abs(data["output"][:, 0, :2] - data["true_offset"])
    assert (err < 1.0).all()


def test_trn_corrnet_no_image_gives_no_fix() -> None:
    """TrnPrep publishes zeros when it has no image: a finite fix the filter ignores."""
    fix = session("trn_corrnet").run(None, {"trn_input": np.zeros((1, 2, 64, 64), np.float32)})
    assert np.isfinite(fix[0]).all()
    assert fix[0][0, 2] < MIN_CONFIDENCE


def test_cards_have_the_closed_loop_section() -> None:
    for _, card, _, _ in CONTRACT.values():
        text = (MODELS / card).read_text()
        assert re.search(r"^## Closed-loop results \(50 seeded cases\)", text, re.MULTILINE)
