"""Helpers shared by the bench scripts: platform block, percentiles, JSON, bench models.

Nothing here is imported by the test suite; the benches are run by hand
(``python bench/NAME.py [--quick]``) and write ``bench/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import itertools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

#: Every bench model is drawn from this seed, so the bytes (and their SHA-256) repeat.
SEED = 20261124
OPSET = 17


# -- command line and platform ----------------------------------------------------------------

def make_parser(description: str) -> argparse.ArgumentParser:
    """The common command line: ``--quick`` for a short smoke run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a short run (about a tenth of the work) to check the script")
    return parser


def parse_args(description: str) -> argparse.Namespace:
    """Parse the common command line."""
    return make_parser(description).parse_args()


def cpu_times() -> list[list[int]]:
    """Per-CPU jiffies from /proc/stat: [busy, total] for each ``cpuN`` line (empty if none)."""
    rows: list[list[int]] = []
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    rows.append([sum(v) - idle, sum(v)])
    except OSError:
        pass
    return rows


def cpu_busy_fractions(before: list[list[int]], after: list[list[int]]) -> list[float]:
    """Each CPU's busy fraction between two :func:`cpu_times` snapshots (whole system)."""
    return [round((a[0] - b[0]) / max(1, a[1] - b[1]), 3)
            for b, a in zip(before, after, strict=False)]


def loadavg() -> str:
    """The first three fields of /proc/loadavg."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def platform_block() -> dict[str, Any]:
    """Versions and machine facts that the figures depend on."""
    import onnxruntime as ort

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "cpu_model": _cpu_model(),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "note": "2-core shared virtual machine: compare medians and p99; maxima are VM stalls",
    }


def git_commit() -> str:
    """The repository's HEAD commit (``+dirty`` when flightai/ has uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "flightai"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# -- statistics ---------------------------------------------------------------------------------

def summary_us(samples_ns: npt.ArrayLike) -> dict[str, float]:
    """p50, p90, p99, p99.9, mean, min and max of nanosecond samples, in microseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {
        "n": int(a.size),
        "p50_us": round(float(np.percentile(a, 50)), 3),
        "p90_us": round(float(np.percentile(a, 90)), 3),
        "p99_us": round(float(np.percentile(a, 99)), 3),
        "p999_us": round(float(np.percentile(a, 99.9)), 3),
        "mean_us": round(float(a.mean()), 3),
        "min_us": round(float(a.min()), 3),
        "max_us": round(float(a.max()), 3),
    }


# -- output ---------------------------------------------------------------------------------------

def write_json(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` atomically (through a ``.tmp`` file)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    document = {"bench": name,
                "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "git_commit": git_commit(),
                **payload}
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a plain fixed-width table."""
    text_rows = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h)
              for i, h in enumerate(headers)]
    print(_line(headers, widths))
    print("  ".join("-" * w for w in widths))
    for row in text_rows:
        print(_line(row, widths))


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """First column left-aligned, the others right-aligned."""
    return "  ".join(c.rjust(w) if i else c.ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


# -- bench models -------------------------------------------------------------------------------

def _model_bytes(graph: Any) -> bytes:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="flightai-bench", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def mlp_model(seed: int = SEED) -> bytes:
    """A 6-64-64-64-3 tanh MLP, float32, batch 1: input ``x`` [1,6], output ``y`` [1,3]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    sizes = (6, 64, 64, 64, 3)
    inits = []
    nodes = []
    prev = "x"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
        b = rng.normal(0.0, 0.1, n_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        z = "y" if last else f"z{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [z]))
        if not last:
            nodes.append(helper.make_node("Tanh", [z], [f"h{i}"]))
            prev = f"h{i}"
    graph = helper.make_graph(
        nodes, "bench_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return _model_bytes(graph)


#: (output channels, stride) of the CNN's 3x3 convolutions.
CNN_LAYERS = ((8, 1), (16, 1), (16, 2), (32, 2))


def cnn_model(seed: int = SEED) -> bytes:
    """A small CNN: input ``x`` [1,1,64,64] float32, 4 conv 3x3 + ReLU, GAP, Gemm to ``y`` [1,3]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed + 1)
    inits = []
    nodes = []
    prev, c_in = "x", 1
    for i, (c_out, stride) in enumerate(CNN_LAYERS):
        w = rng.normal(0.0, np.sqrt(2.0 / (9 * c_in)), (c_out, c_in, 3, 3)).astype(np.float32)
        b = rng.normal(0.0, 0.05, c_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"k{i}"), numpy_helper.from_array(b, f"kb{i}")]
        nodes += [helper.make_node("Conv", [prev, f"k{i}", f"kb{i}"], [f"c{i}"],
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                   strides=[stride, stride]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, c_in = f"r{i}", c_out
    w = rng.normal(0.0, 1.0 / np.sqrt(c_in), (c_in, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(b, "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"])]
    graph = helper.make_graph(
        nodes, "bench_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return _model_bytes(graph)


def single_model_mission(model_file: Path, data: bytes, in_shape: Sequence[int],
                         out_shape: Sequence[int], *, minor_frame_ms: int = 10) -> dict[str, Any]:
    """A one-task mission dict running ``model_file`` (written here with its real SHA-256).

    The model's input ``x`` reads the input signal ``in``; its output ``y``
    writes the signal ``out``. Session options are flightai's defaults (one
    intra-op thread, no spinning, sequential, graph optimisation ``all``),
    spelled out so the JSON states them.
    """
    model_file.write_bytes(data)
    return {
        "mission": {"name": "bench"},
        "runtime": {"minor_frame_ms": minor_frame_ms, "clock": "fast"},
        "signals": [
            {"name": "in", "dtype": "float32", "shape": list(in_shape), "input": True},
            {"name": "out", "dtype": "float32", "shape": list(out_shape)},
        ],
        "models": [{
            "name": "m", "file": model_file.name, "sha256": hashlib.sha256(data).hexdigest(),
            "providers": ["CPUExecutionProvider"], "intra_op_threads": 1,
            "inter_op_threads": 1, "spinning": False, "graph_optimization": "all",
            "execution_mode": "sequential", "warmup_runs": 5,
            "inputs": [{"name": "x", "dtype": "float32", "shape": list(in_shape)}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": list(out_shape)}],
        }],
        "tasks": [{"name": "infer", "model": "m", "period_ms": minor_frame_ms,
                   "inputs": {"x": "in"}, "outputs": {"y": "out"}}],
    }
