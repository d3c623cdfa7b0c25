"""Per-call overhead of a flightai model task against a bare ``InferenceSession.run``.

For a tiny MLP (6-64-64-64-3 tanh) and a small CNN (64x64 image, 4 conv
layers), both built in memory from a fixed seed, this times per call:

* ``bare run`` (the baseline): ``onnxruntime.InferenceSession.run`` on the same
  model bytes and input, its session built with flightai's own
  :func:`~flightai.infer.session.session_options` so options are identical;
* ``bare iobinding`` (reference only): the same bare session through an I/O
  binding set up once, i.e. onnxruntime's floor from Python;
* ``ModelTask.run``: flightai's model task alone (copy in, run with binding);
* ``BoundTask.execute``: what the executive does per job (port mapping,
  ``ModelTask.run``, output dtype/shape checks, read-only copy of outputs).

The paths are interleaved in blocks (order rotated each round) so the VM's
noise hits all of them alike; garbage collection is frozen and disabled during
timing, as the executive does with ``freeze_gc = true``.

    python bench/model_overhead.py [--quick]
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from flightai.config.loader import parse_mission
from flightai.infer.model_task import ModelTask
from flightai.infer.session import session_options
from flightai.sched.bound import BoundTask

BLOCK = 200
WARMUP = 1000
PATHS = ("bare_run", "bare_iobinding", "modeltask_run", "bound_execute")
LABELS = {"bare_run": "bare InferenceSession.run (baseline)",
          "bare_iobinding": "bare run_with_iobinding (reference)",
          "modeltask_run": "flightai ModelTask.run",
          "bound_execute": "flightai BoundTask.execute"}
GOALS = {"mlp": {"metric": "overhead_p50_us", "limit": 20.0,
                 "text": "BoundTask.execute p50 - bare run p50 < 20 us"},
         "cnn": {"metric": "overhead_p50_pct", "limit": 5.0,
                 "text": "(BoundTask.execute p50 - bare run p50) / bare run p50 < 5 %"}}


def _timed(call: Callable[[], object]) -> Callable[[npt.NDArray[np.int64], int, int], None]:
    """A block runner: time ``n`` calls of ``call`` into ``out[off:off+n]``."""
    def block(out: npt.NDArray[np.int64], off: int, n: int) -> None:
        clock = time.perf_counter_ns
        for i in range(off, off + n):
            t0 = clock()
            call()
            out[i] = clock() - t0
    return block


def measure(kind: str, data: bytes, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
            iterations: int, workdir: Path) -> dict[str, Any]:
    """Time the four paths on one model, interleaved; return the summary."""
    mission = common.single_model_mission(workdir / f"{kind}.onnx", data, in_shape, out_shape)
    config = parse_mission(mission, workdir)
    model_config = config.model("m")
    model_task = ModelTask.load(model_config)          # verifies the hash, binds I/O
    bound = BoundTask(config.task("infer"), model_task, config)

    bare = ort.InferenceSession(data, sess_options=session_options(model_config),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(common.SEED).standard_normal(in_shape).astype(np.float32)
    x.flags.writeable = False                           # snapshot values are read-only
    feed = {"x": x}
    snapshot = {"in": x}
    binding = bare.io_binding()
    x_buf = x.copy()
    y_buf = np.zeros(out_shape, np.float32)
    binding.bind_cpu_input("x", x_buf)
    binding.bind_output("y", "cpu", 0, y_buf.dtype, list(y_buf.shape), y_buf.ctypes.data)

    def bare_iobinding() -> None:
        np.copyto(x_buf, x, casting="no")
        bare.run_with_iobinding(binding)

    calls: dict[str, Callable[[], object]] = {
        "bare_run": lambda: bare.run(None, feed),
        "bare_iobinding": bare_iobinding,
        "modeltask_run": lambda: model_task.run(feed),
        "bound_execute": lambda: bound.execute(snapshot),
    }
    # Same numbers out of every path (same bytes, same pinned options).
    reference = bare.run(None, feed)[0]
    bare_iobinding()
    outputs_identical = bool(
        np.array_equal(reference, y_buf)
        and np.array_equal(reference, model_task.run(feed)["y"])
        and np.array_equal(reference, bound.execute(snapshot)[0]["out"]))

    for call in calls.values():
        for _ in range(WARMUP):
            call()
    samples = {p: np.zeros(iterations, np.int64) for p in PATHS}
    blocks = {p: _timed(calls[p]) for p in PATHS}
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        off = 0
        rnd = 0
        while off < iterations:
            n = min(BLOCK, iterations - off)
            order = PATHS[rnd % len(PATHS):] + PATHS[:rnd % len(PATHS)]
            for p in order:
                blocks[p](samples[p], off, n)
            off += n
            rnd += 1
    finally:
        gc.enable()
        gc.unfreeze()

    stats = {p: common.summary_us(samples[p]) for p in PATHS}
    # Drift-robust cross-check: the p50 difference within each round, then its median.
    n_rounds = iterations // BLOCK
    per_round = [np.median(samples["bound_execute"][r * BLOCK:(r + 1) * BLOCK])
                 - np.median(samples["bare_run"][r * BLOCK:(r + 1) * BLOCK])
                 for r in range(n_rounds)]
    base = stats["bare_run"]
    flight = stats["bound_execute"]
    overhead_us = flight["p50_us"] - base["p50_us"]
    overhead_pct = 100.0 * overhead_us / base["p50_us"]
    goal = GOALS[kind]
    measured = {"overhead_p50_us": round(overhead_us, 3),
                "overhead_p50_pct": round(overhead_pct, 2)}
    return {
        "model": {"kind": kind, "input": list(in_shape), "output": list(out_shape),
                  "bytes": len(data), "sha256": model_config.sha256,
                  "cnn_layers_out_channels_stride": [list(c) for c in common.CNN_LAYERS]
                  if kind == "cnn" else None},
        "session_options": dict(model_task.report.options),
        "iterations_per_path": iterations,
        "block": BLOCK,
        "outputs_identical": outputs_identical,
        "paths": {p: {"label": LABELS[p], **stats[p]} for p in PATHS},
        "baseline": {"path": "bare_run", **base},
        "measured": {
            **measured,
            "overhead_roundwise_median_us": round(float(np.median(per_round)) / 1e3, 3)
            if per_round else None,
            "overhead_mean_us": round(flight["mean_us"] - base["mean_us"], 3),
            "overhead_p99_us": round(flight["p99_us"] - base["p99_us"], 3),
            "execute_minus_modeltask_p50_us": round(
                flight["p50_us"] - stats["modeltask_run"]["p50_us"], 3),
            "modeltask_minus_bare_run_p50_us": round(
                stats["modeltask_run"]["p50_us"] - base["p50_us"], 3),
            "modeltask_minus_bare_iobinding_p50_us": round(
                stats["modeltask_run"]["p50_us"] - stats["bare_iobinding"]["p50_us"], 3),
        },
        "goal": goal["text"],
        "goal_limit": goal["limit"],
        "goal_metric": goal["metric"],
        "pass": bool(measured[goal["metric"]] < goal["limit"]),
    }


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    scale = 10 if args.quick else 1
    cases = (("mlp", common.mlp_model(), (1, 6), (1, 3), 20_000 // scale),
             ("cnn", common.cnn_model(), (1, 1, 64, 64), (1, 3), 6_000 // scale))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flightai-bench-") as tmp:
        for kind, data, in_shape, out_shape, n in cases:
            print(f"{kind}: {n} calls per path, interleaved in blocks of {BLOCK} ...", flush=True)
            results[kind] = measure(kind, data, in_shape, out_shape, n, Path(tmp))

    for kind, r in results.items():
        print(f"\n{kind.upper()}  input {r['model']['input']}  outputs identical: "
              f"{r['outputs_identical']}")
        common.print_table(
            ["path", "p50 us", "p99 us", "mean us"],
            [[r["paths"][p]["label"], r["paths"][p]["p50_us"], r["paths"][p]["p99_us"],
              r["paths"][p]["mean_us"]] for p in PATHS])
        m = r["measured"]
        print(f"overhead (execute p50 - bare run p50): {m['overhead_p50_us']:.2f} us "
              f"({m['overhead_p50_pct']:.1f} %)   goal: {r['goal']}   "
              f"-> {common.verdict(r['pass'])}")
    path = common.write_json("model_overhead", {
        "quick": args.quick,
        "platform": common.platform_block(),
        "method": ("per-call perf_counter_ns around each call; paths interleaved in blocks of "
                   f"{BLOCK} calls, order rotated each round; {WARMUP} warm-up calls per path; "
                   "gc frozen and disabled while timing (as the executive's freeze_gc); "
                   "one process, one thread"),
        "results": results,
        "pass": all(r["pass"] for r in results.values()),
    })
    print(f"\nwrote {path.relative_to(common.REPO_ROOT)}")


if __name__ == "__main__":
    main()
