"""``flightai demo``: one LTD-1 descent, runtime and flight-software stub as two processes.

The runtime runs ``flightai run <mission> --clock external`` in a child process
on free loopback ports; this process is the simulator and the flight-software
stub, talking to it only over ZeroMQ. At touchdown it prints the outcome and
writes ``outcome.json``, ``trajectory.csv`` and the runtime's log to the
output folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightai.client import Client
from flightai.config.loader import load_mission
from flightai.errors import ConfigError
from hil.ltd1.dispersions import draw_case
from hil.ltd1.loop import Plant, hard_tasks
from hil.ltd1.sim import Simulator
from hil.ltd1.stub import FlightSoftwareStub, StubError
from hil.ports import free_ports

if TYPE_CHECKING:
    from flightai.config.schema import MissionConfig
    from hil.faults.bench import BenchFaults
    from hil.record.recorder import Recorder
    from hil.verdict.truth import TruthRecorder
    from hil.view.live import LiveView

MISSIONS = Path(__file__).resolve().parent.parent / "models" / "ltd1"
CONFIGS = {"l2": "l2.toml", "b1": "b1.toml"}
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""A runtime on a small board keeps numpy's BLAS to one thread: its pool fights the frame."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightai demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="l2",
                        help="l2: learned perception and guidance (default); b1: classical")
    parser.add_argument("--mission", type=Path, help="a mission file instead of --config")
    parser.add_argument("--seed", type=int, default=1, help="dispersion seed (default 1)")
    parser.add_argument("--nominal", action="store_true", help="no dispersions")
    parser.add_argument("--real-time", action="store_true",
                        help="pace the descent in real time (about 85 s) instead of lockstep "
                             "as fast as the runtime answers")
    parser.add_argument("--workers", type=int, help="runtime worker threads")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="mission config override (repeatable)")
    parser.add_argument("--out", type=Path,
                        help="output folder (default runs/demo-<config>-<seed>)")
    parser.add_argument("--record", type=Path, metavar="RUN.MCAP",
                        help="record every bus message both ways to this MCAP file")
    parser.add_argument("--view", type=int, nargs="?", const=8765, metavar="PORT",
                        help="serve the flight live to Foxglove on ws://127.0.0.1:PORT "
                             "(default 8765): what the runtime publishes, what the stub sends "
                             "and their views (docs/hil.md, Live view)")
    parser.add_argument("--faults", type=Path, metavar="PLAN.toml",
                        help="inject the faults of this seeded plan (docs/hil.md, Fault "
                             "injection)")
    return parser


def main(argv: list[str]) -> int:
    """Fly one descent; exit status 0 when every LTD-1 criterion is met."""
    args = _parser().parse_args(argv)
    mission = args.mission or MISSIONS / CONFIGS[args.config]
    name = args.mission.stem if args.mission else args.config
    out = args.out or Path("runs") / f"demo-{name}-{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    sensors, outputs, commands = (f"tcp://127.0.0.1:{p}" for p in free_ports(3))
    overrides = [*args.overrides, f"bus.sensors={sensors}", f"bus.outputs={outputs}",
                 f"bus.commands={commands}", "runtime.clock=external"]
    config = load_mission(mission, overrides)
    command = [sys.executable, "-m", "flightai", "run", str(mission), "--quiet",
               *(f"--set={o}" for o in overrides)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    case = draw_case(args.seed, nominal=args.nominal)
    print(f"flightai demo: LTD-1 {config.name}, case seed {args.seed}"
          + (" (nominal)" if args.nominal else " (dispersed)")
          + f"; runtime on {sensors.rsplit(':', 1)[1]}/{outputs.rsplit(':', 1)[1]}/"
          f"{commands.rsplit(':', 1)[1]}, {'real time' if args.real_time else 'lockstep'}")
    log_path = out / "runtime.log"
    try:
        faults = _bench_faults(args.faults, config, out)
    except ConfigError as exc:
        print(f"flightai demo: error: {exc}", file=sys.stderr)
        return 2
    if faults is not None:
        command += faults.runtime_args
    try:
        live = _live_view(args.view, outputs)
    except RuntimeError as exc:  # foxglove's server: the port is taken
        print(f"flightai demo: error: the live view cannot serve on port {args.view}: {exc}",
              file=sys.stderr)
        return 2
    try:
        recorder = _recorder(args.record, mission, overrides, outputs)
    except OSError as exc:
        if live is not None:
            live.close()
        print(f"flightai demo: error: cannot record to {args.record}: {exc}", file=sys.stderr)
        return 2
    if faults is not None and recorder is not None:
        faults.record_to(recorder)
    wall_start = time.monotonic()
    with log_path.open("w") as log:
        runtime = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **ONE_BLAS_THREAD,
                                        **(faults.runtime_env if faults else {})})
        try:
            plant = Plant(Simulator(case), keep_trajectory=True)
            truth = _truth_recorder(recorder, plant)
            with Client(sensors, outputs, commands, name="fsw-stub") as client:
                stub = FlightSoftwareStub(plant, client, config.runtime.minor_frame_ns,
                                          real_time=args.real_time,
                                          on_send=_sent_to(truth.on_send if truth else None,
                                                           live.publish_sent if live else None),
                                          alive=lambda: runtime.poll() is None,
                                          outbound=faults.injector.messages_for if faults
                                          else None)
                stub.fly()
            if faults is not None:
                applied = faults.finish(plant.sim.t_ns + config.runtime.minor_frame_ns)
                print(f"  {len(applied)} faults applied; wrote {out}/faults.json")
            if truth is not None:  # the ground truth, for verdicts (hil.verdict.truth)
                truth.record_outcome(stub.record(args.seed, hard_tasks(config)))
            runtime.wait(timeout=60)
        except StubError as exc:
            log.flush()
            last = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
            print(f"flightai demo: error: {exc}; the runtime's last words ({log_path}):\n"
                  f"  {last[0]}", file=sys.stderr)
            return 2
        finally:
            if runtime.poll() is None:
                runtime.terminate()
                runtime.wait(timeout=10)
            if recorder is not None:
                _close_recorder(recorder, args.record)
            if live is not None:
                live.close()
    wall_s = time.monotonic() - wall_start
    flight = stub.record(args.seed, hard_tasks(config))
    runtime_digest = _digest_in(log_path)
    (out / "outcome.json").write_text(json.dumps(
        {**flight.to_json(), "mission": str(mission), "runtime_digest": runtime_digest,
         "wall_s": round(wall_s, 2)}, indent=2) + "\n")
    _write_trajectory(plant, out / "trajectory.csv")
    print(flight.summary())
    same = "matches" if runtime_digest == flight.digest else "DIFFERS from"
    print(f"  runtime output digest {runtime_digest[:16]}... {same} what the stub received")
    print(f"flown in {wall_s:.1f} s wall; wrote {out}/outcome.json, trajectory.csv, "
          "runtime.log")
    return 0 if flight.success and runtime_digest == flight.digest else 1


def _bench_faults(plan: Path | None, config: MissionConfig, out: Path) -> BenchFaults | None:
    """The plan's faults set up for this run (None without a plan)."""
    if plan is None:
        return None
    from hil.faults.bench import BenchFaults

    return BenchFaults(plan, config, out)


def _recorder(path: Path | None, mission: Path, overrides: list[str],
              outputs: str) -> Recorder | None:
    """A recorder subscribed to ``outputs``, with the mission stored (None without a path)."""
    if path is None:
        return None
    from hil.record.recorder import Recorder

    recorder = Recorder(path)
    recorder.add_mission(mission, overrides)
    recorder.subscribe(outputs)
    return recorder


def _truth_recorder(recorder: Recorder | None, plant: Plant) -> TruthRecorder | None:
    """Records the ground truth next to what the stub sends (None without a recorder)."""
    if recorder is None:
        return None
    from hil.verdict.truth import TruthRecorder

    return TruthRecorder(recorder, plant)


def _live_view(port: int | None, outputs: str) -> LiveView | None:
    """A live Foxglove view of the flight on loopback (None without a port)."""
    if port is None:
        return None
    from hil.view.live import LiveView

    live = LiveView(outputs, port=port)
    live.start()
    print(f"  live view on ws://127.0.0.1:{live.port} (Foxglove: Open connection)", flush=True)
    return live


def _sent_to(*sinks: Callable[[list[Any]], object] | None) -> Callable[[list[Any]], None] | None:
    """One ``on_send`` calling each of ``sinks`` that is given (None if none is)."""
    given = [sink for sink in sinks if sink is not None]
    if not given:
        return None

    def on_send(frames: list[Any]) -> None:
        for sink in given:
            sink(frames)

    return on_send


def _close_recorder(recorder: Recorder, path: Path) -> None:
    stats = recorder.close()
    gaps = sum(stats.seq_gaps.values())
    print(f"  recorded {sum(stats.messages.values())} messages on {len(stats.messages)} topics "
          f"to {path} ({gaps} lost upstream, {stats.drops} dropped)")


def _digest_in(log_path: Path) -> str:
    found = re.findall(r"output digest ([0-9a-f]{64})", log_path.read_text())
    return found[-1] if found else ""


def _write_trajectory(plant: Plant, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t_s", "x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps", "mass_kg",
                         "nav_x_m", "nav_y_m", "nav_z_m", "thrust_x_n", "thrust_y_n",
                         "thrust_z_n"])
        writer.writerows(plant.trajectory or [])
