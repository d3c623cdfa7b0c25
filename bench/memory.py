"""Runtime memory beyond the onnxruntime sessions, on the ltd1-lite example mission.

Each measurement runs in a fresh subprocess (this script with ``--child``):

* ``bare`` (the baseline): import flightai, then build only the bare
  onnxruntime sessions for the mission's two models (same verified bytes, same
  pinned options, same warm-up run count), and read RSS;
* ``bare_np``: the same plus ``import numpy.random`` (numpy loads it lazily; the
  example's synthetic source needs it), a second baseline without that import;
* ``full``: build the whole executive for ``examples/ltd1-lite/mission.toml``
  (models, Python tasks, synthetic source) on the FastClock, run 10 s of
  mission time (1000 frames of 10 ms), and read RSS after building and after
  the run;
* ``trace``: the same as ``full`` under ``tracemalloc``, for the peak of Python
  allocations while building and while running (tracemalloc inflates RSS, so
  RSS is not read there).

RSS comes from ``/proc/self/statm``; ``VmHWM`` (peak RSS) from
``/proc/self/status``. Each kind is repeated and the median is reported.

    python bench/memory.py [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

MISSION = common.REPO_ROOT / "examples" / "ltd1-lite" / "mission.toml"
MISSION_MS = 10_000
MIB = 1024 * 1024
KINDS = ("bare", "bare_np", "full", "trace")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child_bare(numpy_random: bool) -> dict[str, Any]:
    """Import flightai and build only the bare sessions (warmed like ModelTask).

    With ``numpy_random``, also import ``numpy.random``, which numpy loads
    lazily and which the example's synthetic source pulls in: a second
    baseline that leaves out the mission's own imports.
    """
    import numpy as np
    import onnxruntime as ort

    if numpy_random:
        import numpy.random

    import flightai.runtime  # noqa: F401  - the same imports as the full path
    from flightai.config.loader import load_mission
    from flightai.infer.session import read_verified, session_options

    config = load_mission(MISSION)
    sessions = []
    for model in config.models:
        session = ort.InferenceSession(read_verified(model), sess_options=session_options(model),
                                       providers=["CPUExecutionProvider"])
        feed = {p.name: np.zeros(p.shape, p.dtype) for p in model.inputs}
        for _ in range(model.warmup_runs):
            session.run(None, feed)
        sessions.append(session)
    return {"rss_bytes": _rss_bytes(), "hwm_bytes": _hwm_bytes(), "sessions": len(sessions)}


def child_full(trace: bool) -> dict[str, Any]:
    """Build the ltd1-lite executive on the FastClock and run 1000 frames."""
    import tracemalloc

    if trace:
        tracemalloc.start()
    from flightai.config.loader import load_mission
    from flightai.runtime import build_executive
    from flightai.sched.clock import FastClock
    from flightai.timebase import NS_PER_MS

    config = load_mission(MISSION)
    executive = build_executive(config, clock=FastClock())
    out: dict[str, Any] = {}
    if trace:
        out["traced_build_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        out["traced_before_run_bytes"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    else:
        out["rss_built_bytes"] = _rss_bytes()
    t0 = time.perf_counter()
    executive.run(MISSION_MS * NS_PER_MS)
    out["run_wall_s"] = round(time.perf_counter() - t0, 3)
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        out["traced_run_peak_bytes"] = peak
        out["traced_after_run_bytes"] = current
        tracemalloc.stop()
    else:
        out["rss_bytes"] = _rss_bytes()
        out["hwm_bytes"] = _hwm_bytes()
    health = executive.health.snapshot()
    out["frames"] = health["frames"]
    out["mode"] = health["mode"]
    out["published"] = {name: t.published for name, t in executive.health.tasks.items()}
    out["sessions"] = sum(1 for t in config.tasks if t.model is not None)
    return out


def _spawn(kind: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind],
                          capture_output=True, text=True, check=False, cwd=common.REPO_ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"child {kind} failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _mib(value: float) -> float:
    return round(value / MIB, 2)


def main() -> None:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--child", choices=KINDS, help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        if args.child.startswith("bare"):
            result = child_bare(args.child == "bare_np")
        else:
            result = child_full(args.child == "trace")
        print(json.dumps(result))
        return

    repeats = 1 if args.quick else 5
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for r in range(repeats):
        for kind in KINDS:                       # interleaved, one fresh process each
            print(f"run {r + 1}/{repeats}: {kind} ...", flush=True)
            runs[kind].append(_spawn(kind))

    def med(kind: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[kind]))

    bare = med("bare", "rss_bytes")
    bare_np = med("bare_np", "rss_bytes")
    built = med("full", "rss_built_bytes")
    after = med("full", "rss_bytes")
    measured = {
        "rss_bare_mib": _mib(bare),
        "rss_full_built_mib": _mib(built),
        "rss_full_after_run_mib": _mib(after),
        "runtime_beyond_sessions_mib": _mib(after - bare),
        "rss_bare_with_numpy_random_mib": _mib(bare_np),
        "runtime_beyond_sessions_and_numpy_random_mib": _mib(after - bare_np),
        "of_which_build_mib": _mib(built - bare),
        "of_which_run_growth_mib": _mib(after - built),
        "peak_rss_full_mib": _mib(med("full", "hwm_bytes")),
        "peak_rss_bare_mib": _mib(med("bare", "hwm_bytes")),
        "tracemalloc_build_peak_mib": _mib(med("trace", "traced_build_peak_bytes")),
        "tracemalloc_run_peak_mib": _mib(med("trace", "traced_run_peak_bytes")),
        "tracemalloc_run_peak_above_start_kib": round(
            (med("trace", "traced_run_peak_bytes") - med("trace", "traced_before_run_bytes"))
            / 1024, 1),
        "tracemalloc_retained_after_run_kib": round(
            (med("trace", "traced_after_run_bytes") - med("trace", "traced_before_run_bytes"))
            / 1024, 1),
    }
    rss_spread = {k: [_mib(run[key]) for run in runs[k]]
                  for k, key in (("bare", "rss_bytes"), ("bare_np", "rss_bytes"),
                                 ("full", "rss_bytes"))}
    common.print_table(
        ["figure", "value"],
        [["RSS, bare sessions only (baseline)", f"{measured['rss_bare_mib']:.2f} MiB"],
         ["RSS, full executive built", f"{measured['rss_full_built_mib']:.2f} MiB"],
         ["RSS, after 10 s mission (1000 frames)", f"{measured['rss_full_after_run_mib']:.2f} MiB"],
         ["runtime beyond the sessions", f"{measured['runtime_beyond_sessions_mib']:.2f} MiB"],
         ["  same, baseline also imports numpy.random",
          f"{measured['runtime_beyond_sessions_and_numpy_random_mib']:.2f} MiB"],
         ["  of which building", f"{measured['of_which_build_mib']:.2f} MiB"],
         ["  of which growth during the run", f"{measured['of_which_run_growth_mib']:.2f} MiB"],
         ["tracemalloc peak, importing + building",
          f"{measured['tracemalloc_build_peak_mib']:.2f} MiB"],
         ["tracemalloc peak during the run", f"{measured['tracemalloc_run_peak_mib']:.2f} MiB"],
         ["  peak above the start of the run",
          f"{measured['tracemalloc_run_peak_above_start_kib']:.1f} KiB"],
         ["  retained after the run",
          f"{measured['tracemalloc_retained_after_run_kib']:.1f} KiB"]])
    print(f"RSS per repeat (MiB): {rss_spread}")
    print(f"frames run: {[r['frames'] for r in runs['full']]}, mode {runs['full'][0]['mode']}")
    path = common.write_json("memory", {
        "quick": args.quick,
        "platform": common.platform_block(),
        "mission": str(MISSION.relative_to(common.REPO_ROOT)),
        "mission_time_ms": MISSION_MS,
        "repeats": repeats,
        "method": ("one fresh subprocess per measurement, kinds interleaved; RSS from "
                   "/proc/self/statm, peak from VmHWM; medians over repeats; tracemalloc in a "
                   "separate process (it inflates RSS)"),
        "baseline": {"what": "import flightai + bare onnxruntime sessions for the mission's "
                             "models (same bytes and options, same warm-up runs)",
                     "rss_mib": measured["rss_bare_mib"],
                     "secondary": "the same plus `import numpy.random` (lazily imported by the "
                                  "example's synthetic source, not by flightai)",
                     "secondary_rss_mib": measured["rss_bare_with_numpy_random_mib"]},
        "measured": measured,
        "rss_per_repeat_mib": rss_spread,
        "runs": runs,
        "goal": None,
        "pass": None,
        "note": "no goal in the issue: the figure is recorded",
    })
    print(f"\nwrote {path.relative_to(common.REPO_ROOT)}")


def argparse_hidden() -> str:
    """Help text of the internal ``--child`` option."""
    return "internal: run one measurement in this process and print it as JSON"


if __name__ == "__main__":
    main()
