"""Frame-loop jitter of a wall-clock runtime with the recorder on and off, in the same run.

The runtime is ``flightai run`` in a child process (``wall`` clock, 10 ms minor
frame, ``spin_us`` 500, one worker, BLAS on one thread, as ``flightai demo``
starts it) flying a bench mission shaped like LTD-1's outputs: ``nav`` (20 ms:
``nav.state`` float64[1, 12], ``nav.rv`` float32[1, 6]), ``command`` (20 ms:
``thrust.cmd`` float32[3], ``rta.status`` float32[1, 3]) and ``camera`` (200 ms:
``camera.image`` float32[256, 256], 256 KiB), health every 100 ms. Arms:

* ``off``: nothing records;
* ``on``: ``flightai hil record`` (a second process, default options: views on)
  subscribed to every topic;
* ``on_no_views``: the same with ``--no-views``.

Each segment starts a fresh runtime (and recorder), waits 3 s, resets the
executive's counters (``reset_counters``), runs 11 s and reads the executive's
health with ``status``: frame-start lateness p50/p99 over its ring of the last
1024 frames (10.24 s, all inside the window), the maximum and the frame slips.
Arms alternate, order rotated, three segments each; the figures are medians over
segments. No goal is set: the recorder must not make the frame loop later.

    python bench/record_jitter.py [--quick]     # 3 segments per arm; --quick: 1
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from flightai.client import Client
from hil.demo import ONE_BLAS_THREAD
from hil.ports import free_ports
from hil.record import Recording

ARMS = ("off", "on", "on_no_views")
WARMUP_S = 3.0
WINDOW_S = 11.0  # > the health ring (1024 frames of 10 ms)

TASKS = '''
import numpy as np


class Nav:
    """A descent: position and velocity, integrated per job."""

    def __init__(self):
        self.r = np.array([-2000.0, 300.0, 2000.0])
        self.v = np.array([40.0, -5.0, -25.0])

    def run(self, inputs):
        self.r = self.r + 0.02 * self.v
        state = np.concatenate([self.r, self.v, np.zeros(3), [self.r[2]], [5.0, 5.0]])
        return {"state": state.reshape(1, 12),
                "rv": np.concatenate([self.r, self.v]).astype(np.float32).reshape(1, 6)}


def command(inputs):
    v = inputs["state"][0, 3:6]
    return {"thrust": (-50.0 * v).astype(np.float32),
            "status": np.array([[1.0, 0.0, 0.0]], np.float32)}


class Camera:
    """A 256 x 256 image whose pattern moves each job."""

    def __init__(self):
        y, x = np.mgrid[0:256, 0:256].astype(np.float32) / 256
        self.base = 0.5 + 0.25 * np.sin(12 * x) * np.cos(9 * y)
        self.k = 0

    def run(self, inputs):
        self.k += 1
        return {"image": np.roll(self.base, self.k, axis=1).astype(np.float32)}
'''

MISSION = '''
[mission]
name = "record-jitter"

[runtime]
minor_frame_ms = 10
clock = "wall"
workers = 1
spin_us = 500

[bus]
sensors = "{sensors}"
outputs = "{outputs}"
commands = "{commands}"
health_period_ms = 100

[[signals]]
name = "nav.state"
dtype = "float64"
shape = [1, 12]

[[signals]]
name = "nav.rv"
dtype = "float32"
shape = [1, 6]

[[signals]]
name = "thrust.cmd"
dtype = "float32"
shape = [3]

[[signals]]
name = "rta.status"
dtype = "float32"
shape = [1, 3]

[[signals]]
name = "camera.image"
dtype = "float32"
shape = [256, 256]

[[tasks]]
name = "nav"
factory = "tasks.py:Nav"
period_ms = 20
deadline_ms = 10
inputs = {{}}
outputs = {{ state = "nav.state", rv = "nav.rv" }}

[[tasks]]
name = "command"
function = "tasks.py:command"
period_ms = 20
offset_ms = 10
deadline_ms = 10
inputs = {{ state = "nav.state" }}
outputs = {{ thrust = "thrust.cmd", status = "rta.status" }}

[[tasks]]
name = "camera"
factory = "tasks.py:Camera"
period_ms = 200
deadline_ms = 10
inputs = {{}}
outputs = {{ image = "camera.image" }}
'''


def segment(folder: Path, arm: str, index: int) -> dict[str, Any]:
    """One runtime (and recorder) run; the executive's health over the window."""
    sensors, outputs, commands = (f"tcp://127.0.0.1:{p}" for p in free_ports(3))
    mission = folder / "mission.toml"
    mission.write_text(MISSION.format(sensors=sensors, outputs=outputs, commands=commands))
    env = {**os.environ, **ONE_BLAS_THREAD}
    runtime = subprocess.Popen([sys.executable, "-m", "flightai", "run", str(mission), "--quiet"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    recorder = None
    path = folder / f"{arm}-{index}.mcap"
    try:
        with Client(sensors, outputs, commands, name="bench", timeout_ms=2000) as client:
            _wait_running(client, runtime)
            if arm != "off":
                recorder = subprocess.Popen(
                    [sys.executable, "-m", "flightai", "hil", "record", "--outputs", outputs,
                     "-o", str(path), *(["--no-views"] if arm == "on_no_views" else [])],
                    env=env, stdout=subprocess.PIPE, text=True)
                assert recorder.stdout is not None
                assert "flightai hil record" in recorder.stdout.readline()
            time.sleep(WARMUP_S)
            ack = client.command("reset_counters")
            if not ack.accepted:
                raise RuntimeError(f"reset_counters refused: {ack.reason}")
            time.sleep(WINDOW_S)
            health = client.status()
            client.command("stop")
        recorded: dict[str, Any] = {}
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            out, _ = recorder.communicate(timeout=120)
            meta = Recording(path).metadata["flightai.recorder"]
            recorded = {"summary": out.strip().splitlines()[-1], "drops": int(meta["drops"]),
                        "views": int(meta["views"]), "view_skips": int(meta["view_skips"]),
                        "file_mb": round(path.stat().st_size / 1e6, 1)}
            path.unlink()
        runtime.wait(timeout=30)
    finally:
        for proc in (recorder, runtime):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"arm": arm, "frames": health["frames"], "frame_slips": health["frame_slips"],
            "lateness_p50_us": health["wall_lateness_p50_ns"] / 1e3,
            "lateness_p99_us": health["wall_lateness_p99_ns"] / 1e3,
            "lateness_max_us": health["wall_lateness_max_ns"] / 1e3,
            "task_exec_p99_us": {name: t["wall_exec_p99_ns"] / 1e3
                                 for name, t in health["tasks"].items()},
            "recorder": recorded}


def _wait_running(client: Client, runtime: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if runtime.poll() is not None:
            error = runtime.stderr.read() if runtime.stderr else b""
            raise RuntimeError(f"the runtime exited: {error!r}")
        with contextlib.suppress(Exception):  # not answering yet
            if client.status().get("mode") == "NOMINAL":
                return
        time.sleep(0.2)
    raise RuntimeError("the runtime never reached NOMINAL")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    segments = 1 if args.quick else 3
    before_cpu, load_before = common.cpu_times(), common.loadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="record-jitter-") as tmp:
        folder = Path(tmp)
        (folder / "tasks.py").write_text(TASKS)
        for index in range(segments):
            order = ARMS[index % len(ARMS):] + ARMS[:index % len(ARMS)]
            for arm in order:
                run = segment(folder, arm, index)
                runs.append(run)
                print(f"  segment {index} {arm:12} p50 {run['lateness_p50_us']:8.1f} us  "
                      f"p99 {run['lateness_p99_us']:8.1f} us  max {run['lateness_max_us']:8.1f}"
                      f" us  slips {run['frame_slips']}  {run['recorder'].get('summary', '')}",
                      flush=True)
    arms: dict[str, Any] = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        arms[arm] = {key: round(statistics.median(r[key] for r in mine), 1)
                     for key in ("lateness_p50_us", "lateness_p99_us", "lateness_max_us")}
        arms[arm]["frame_slips"] = sum(r["frame_slips"] for r in mine)
        arms[arm]["frames"] = sum(r["frames"] for r in mine)
    for arm in ("on", "on_no_views"):
        for key in ("lateness_p50_us", "lateness_p99_us"):
            arms[arm][key.replace("_us", "_added_us")] = round(
                arms[arm][key] - arms["off"][key], 1)
    common.print_table(["arm", "p50 us", "p99 us", "max us", "slips", "frames"],
                       [[arm, a["lateness_p50_us"], a["lateness_p99_us"], a["lateness_max_us"],
                         a["frame_slips"], a["frames"]] for arm, a in arms.items()])
    path = common.write_json("record_jitter", {
        "quick": args.quick,
        "platform": common.platform_block(),
        "system_during_run": {
            "loadavg_before": load_before, "loadavg_after": common.loadavg(),
            "cpu_busy_fraction_per_cpu": common.cpu_busy_fractions(before_cpu,
                                                                   common.cpu_times())},
        "conditions": {
            "segments_per_arm": segments, "warmup_s": WARMUP_S, "window_s": WINDOW_S,
            "runtime": "flightai run, wall clock, 10 ms minor frame, spin_us 500, workers 1, "
                       "OPENBLAS/OMP/MKL threads 1; nav + command at 50 Hz, a 256 KiB camera "
                       "image at 5 Hz, health at 10 Hz",
            "recorder": "flightai hil record in its own process, every topic, default options "
                        "(on) or --no-views (on_no_views)",
            "lateness": "the executive's own health after reset_counters: p50/p99 over its "
                        "ring of the last 1024 frame starts, max over the window",
        },
        "results": {"arms": arms, "segments": runs},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
