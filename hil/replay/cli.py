"""``flightai hil replay``: the player's options, the passes, and the verdict of each."""

from __future__ import annotations

import argparse
import sys

from flightai.errors import FlightaiError
from flightai.timebase import NS_PER_S
from hil.ltd1.stub import StubError
from hil.record.reader import RecordingError, open_recording
from hil.replay.control import Stepper
from hil.replay.player import BusTarget, ControlFactory, Mode, ReplayResult, compare_replay, replay


def add_player_options(parser: argparse.ArgumentParser) -> None:
    """The player's options of ``flightai hil replay``."""
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.FAST.value,
                        help="fast (as fast as possible, default), lockstep (tick by tick, "
                             "each frame awaited) or realtime (paced by the wall clock)")
    parser.add_argument("--rate", type=float,
                        help="realtime: mission time runs this many times faster than "
                             "the wall clock (default 1)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="mission time (s) the window starts at: frames before it run as "
                             "a fast seek, unpaced, unstepped and not compared")
    parser.add_argument("--stop", type=float, metavar="S",
                        help="mission time (s) to stop at (default: the end of the recording)")
    parser.add_argument("--loop", type=int, default=1, metavar="N",
                        help="replay N times, each from a fresh runtime, each compared")
    parser.add_argument("--step", action="store_true",
                        help="frame by frame from the terminal (Enter: next frame, N: run N "
                             "frames, c: continue, q: quit); input that ends or a silent pipe "
                             "continues")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (CI logs)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--bus", action="store_true",
                        help="replay over the bus into a child runtime process "
                             "(flightai run MISSION --clock external on free loopback ports)")
    target.add_argument("--endpoints", nargs=3, metavar=("SENSORS", "OUTPUTS", "COMMANDS"),
                        help="replay over the bus into this running runtime (external clock, "
                             "fresh: at mission time 0)")


def _options_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the player's options, or None."""
    if args.rate is not None and args.mode != Mode.REAL_TIME.value:
        return "--rate applies to --mode realtime"
    if args.rate is not None and not args.rate > 0:
        return f"--rate: expected a number above 0, got {args.rate}"
    if args.loop < 1:
        return f"--loop: expected at least 1, got {args.loop}"
    if args.endpoints and args.loop > 1:
        return "--loop with --endpoints: a running runtime cannot go back to mission time 0"
    if args.start < 0 or (args.stop is not None and args.stop <= args.start):
        return f"window: expected 0 <= --start < --stop, got {args.start} and {args.stop}"
    return None


def run_replay(args: argparse.Namespace) -> int:
    """Replay ``args.recording`` ``--loop`` times; 0 when every pass matched, 1 when one diverged.

    Status 2 for bad options, a recording that cannot be replayed, or a runtime
    over the bus that fails.
    """
    problem = _options_error(args)
    if problem is not None:
        print(f"flightai hil replay: error: {problem}", file=sys.stderr)
        return 2
    try:
        recording = open_recording(args.recording)
    except RecordingError as exc:
        print(f"flightai hil replay: error: {exc}", file=sys.stderr)
        return 2
    bus = None
    if args.bus or args.endpoints:
        bus = BusTarget(tuple(args.endpoints) if args.endpoints else None)
    stepper = Stepper() if args.step else None
    control = ControlFactory(progress=args.progress and not args.step, stepper=stepper)
    tolerances = dict(args.tolerances)
    status = 0
    for number in range(1, args.loop + 1):
        try:
            result = replay(recording, args.mission, args.overrides, args.workers,
                            mode=Mode(args.mode), rate=args.rate or 1.0,
                            start_ns=round(args.start * NS_PER_S),
                            stop_ns=None if args.stop is None else round(args.stop * NS_PER_S),
                            bus=bus, control=control)
        except (ValueError, FlightaiError, StubError) as exc:
            print(f"flightai hil replay: error: {exc}", file=sys.stderr)
            return 2
        comparison = compare_replay(recording, result, tolerances)
        label = f"pass {number}/{args.loop}: " if args.loop > 1 else ""
        print(f"flightai hil replay: {label}{_describe(result)}")
        print(f"flightai hil replay: {label}{comparison.summary()}", flush=True)
        if not comparison.ok:
            status = 1
        if result.quit:
            break
    return status


def _describe(result: ReplayResult) -> str:
    window = (f"{result.start_ns / NS_PER_S:g} s to {result.mission_ns / NS_PER_S:g} s"
              if result.start_ns else f"to {result.mission_ns / NS_PER_S:g} s")
    lag = f", max lag {result.max_lag_ms:.1f} ms" if result.mode is Mode.REAL_TIME else ""
    quit_ = " (quit)" if result.quit else ""
    refused = (" (refused: " + ", ".join(f"{n} {reason}" for reason, n in
                                         sorted(result.rejects.items())) + ")"
               if result.rejects else "")
    return (f"{result.mode.value} {result.target}, {window}{quit_}: {result.frames} frames, "
            f"{result.samples} samples{refused}, {len(result.publications)} publications in "
            f"{result.wall_s:.2f} s ({result.speed:.1f}x real time{lag}); "
            f"output digest {result.digest}")
