"""Build the two ONNX models of the ltd1-lite example, reproducibly from a seed.

    python examples/ltd1-lite/build_models.py        # rewrites models/*.onnx, prints hashes

* ``guidance_mlp.onnx``: a 6-64-64-3 tanh MLP (G-Net's shape) fitted to the
  example's PD guidance law. Hidden weights are drawn from the seed and the
  output layer is solved by least squares on sampled states (an extreme
  learning machine), so it is a real fit made in a second without PyTorch.
* ``camera_monitor.onnx``: a small CNN with fixed kernels (Sobel gradients and
  a box blur) reporting image mean, contrast and sharpness of the nadir camera.

Needs the ``onnx`` package (``pip install -e '.[dev]'``). On one platform the
bytes, and so the SHA-256 in ``mission.toml``, are reproduced exactly; another
BLAS may change the last bits of the least-squares fit.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tasks import STATE_SCALE, pd_law  # noqa: E402

SEED = 20261123
OPSET = 17


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="flightai-examples", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def guidance_mlp(seed: int = SEED) -> bytes:
    """Fit the MLP to :func:`tasks.pd_law` and export it."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1.0, 1.0, size=(20_000, 6)) * STATE_SCALE
    targets = np.stack([pd_law(s) for s in states])
    w1 = rng.normal(0, 1.0 / np.sqrt(6), (6, 64))
    b1 = rng.normal(0, 0.1, 64)
    w2 = rng.normal(0, 1.0 / np.sqrt(64), (64, 64))
    b2 = rng.normal(0, 0.1, 64)
    x = states / STATE_SCALE
    h = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2)
    design = np.hstack([h, np.ones((len(h), 1))])
    solution, *_ = np.linalg.lstsq(design, targets, rcond=None)
    w3, b3 = solution[:64], solution[64]
    scale = (1.0 / STATE_SCALE).astype(np.float32).reshape(1, 6)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((scale, "scale"), (w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"),
              (b3, "b3"))]
    nodes = [
        helper.make_node("Mul", ["state", "scale"], ["x"]),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z1"]),
        helper.make_node("Tanh", ["z1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["z2"]),
        helper.make_node("Tanh", ["z2"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w3", "b3"], ["accel_cmd"]),
    ]
    graph = helper.make_graph(
        nodes, "guidance_mlp",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("accel_cmd", TensorProto.FLOAT, [1, 3])], inits)
    fit = np.abs(design @ solution - targets)
    print(f"guidance_mlp: fit error median {np.median(fit):.4f}, p99 "
          f"{np.percentile(fit, 99):.4f} m/s^2 over {len(states)} states")
    return _model(graph)


def camera_monitor() -> bytes:
    """Image mean, contrast (std of a blurred image) and sharpness (gradient energy)."""
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
    kernels = np.stack([sobel_x, sobel_x.T]).reshape(2, 1, 3, 3)
    box = np.full((1, 1, 5, 5), 1 / 25, np.float32)
    inits = [numpy_helper.from_array(kernels, "sobel"), numpy_helper.from_array(box, "box"),
             numpy_helper.from_array(np.array([1, 3], np.int64), "out_shape")]
    nodes = [
        helper.make_node("Conv", ["image", "sobel"], ["grad"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["grad", "grad"], ["grad2"]),
        helper.make_node("ReduceMean", ["grad2"], ["sharp"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Conv", ["image", "box"], ["blur"], pads=[2, 2, 2, 2]),
        helper.make_node("ReduceMean", ["blur"], ["mean_c"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sub", ["blur", "mean_c"], ["dev"]),
        helper.make_node("Mul", ["dev", "dev"], ["dev2"]),
        helper.make_node("ReduceMean", ["dev2"], ["var"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sqrt", ["var"], ["contrast"]),
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Concat", ["mean", "contrast", "sharp"], ["stats"], axis=0),
        helper.make_node("Reshape", ["stats", "out_shape"], ["quality"]),
    ]
    graph = helper.make_graph(
        nodes, "camera_monitor",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor_value_info("quality", TensorProto.FLOAT, [1, 3])], inits)
    return _model(graph)


def main() -> None:
    """Write both models and print their SHA-256 for ``mission.toml``."""
    for name, data in (("guidance_mlp.onnx", guidance_mlp()),
                       ("camera_monitor.onnx", camera_monitor())):
        path = HERE / "models" / name
        path.write_bytes(data)
        print(f"{path.relative_to(HERE)}  sha256 = {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
