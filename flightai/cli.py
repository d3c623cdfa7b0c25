"""The ``flightai`` command: check, run, status, cmd, keys; demo and hil ... (ground side, lazy)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from flightai import __version__
from flightai.bus.server import BusServer
from flightai.check import check_mission
from flightai.cli_board import add_board_option, apply_board
from flightai.cli_bundle import add_bundle_commands, add_bundle_options, bundle_status, open_mission
from flightai.cli_bus import add_bus_commands
from flightai.cli_deploy import add_deploy_commands, prepare_process
from flightai.config import ClockKind
from flightai.config.schema import MissionConfig
from flightai.errors import FlightaiError
from flightai.inject import Injections, load_injections
from flightai.profile import read_profile
from flightai.runtime import build_executive, load_tasks, make_clock, make_source
from flightai.sched.clock import Clock
from flightai.sched.executive import Executive
from flightai.sched.health import Event, Health, Severity
from flightai.sched.io import ChainSource, DigestSink, InputSource, OutputSink, Publication
from flightai.service import Notifier, WatchdogSink
from flightai.timebase import NS_PER_MS, format_ns

GROUND_COMMANDS = {"demo": "hil.demo", "hil": "hil.cli"}
"""Ground-side commands: imported only when run, from the ``hil`` package."""
HIL_HINT = "flightai {command} needs: pip install 'flightai[hil]' (missing: {missing})"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in GROUND_COMMANDS:  # their own parser reads every option after
        return _run_ground(argv[0], GROUND_COMMANDS[argv[0]], argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status: int = args.handler(args)
        return status
    except FlightaiError as exc:
        print(f"flightai: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightai", description=__doc__)
    parser.add_argument("--version", action="version", version=f"flightai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="validate a mission: schedule, models, providers, code")
    check.add_argument("mission", type=Path, nargs="?")
    add_bundle_options(check)
    _add_set(check)
    check.add_argument("--profile", type=Path, metavar="PROFILE.json",
                       help="also admit the timing: each task's budget must cover the p99.9 "
                            "measured by flightai profile on this board, plus the margin")
    check.set_defaults(handler=_cmd_check)
    run = sub.add_parser("run", help="run a mission until stopped (SIGINT/SIGTERM) or for a time")
    run.add_argument("mission", type=Path, nargs="?")
    add_bundle_options(run)
    _add_set(run)
    run.add_argument("--clock", choices=[c.value for c in ClockKind],
                     help="override runtime.clock")
    run.add_argument("--workers", type=int, help="override runtime.workers")
    run.add_argument("--duration-ms", type=int, help="stop after this much mission time")
    run.add_argument("--quiet", action="store_true", help="no status line, only the summary")
    run.add_argument("--inject-faults", type=Path, metavar="FILE.json",
                     help="bench only, with FLIGHTAI_FAULT_INJECTION=1: force the overruns and "
                          "NaN outputs listed (written by flightai demo --faults)")
    run.set_defaults(handler=_cmd_run)
    add_bus_commands(sub)
    add_deploy_commands(sub)
    add_bundle_commands(sub)
    sub.add_parser("demo", help="fly one LTD-1 descent: simulator + flight-software stub and "
                   "the runtime as two processes (needs flightai[hil])", add_help=False)
    sub.add_parser("hil", help="bench and ground tools (needs flightai[hil])", add_help=False)
    return parser


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="override a config value before validation (repeatable), e.g. "
                             "--set bus.sensors='\"tcp://127.0.0.1:6000\"' or "
                             "--set tasks.nav.params.seed=3")
    add_board_option(parser)


def _cmd_check(args: argparse.Namespace) -> int:
    apply_board(args)
    config, path, bundled = open_mission(args)
    if bundled is not None:
        print(f"OK: {bundled.bundle.describe()}")
    result = check_mission(config, path, read_profile(args.profile) if args.profile else None)
    print("\n".join(result.lines))
    return 1 if result.problems else 0


class _ConsoleSink:
    """Prints warnings and errors as they happen; feeds the output digest."""

    def __init__(self, digest: DigestSink) -> None:
        self._digest = digest

    def publish(self, publication: Publication) -> None:
        self._digest.publish(publication)

    def frame_done(self, t_ns: int, health: Health) -> None:
        pass

    def event(self, event: Event) -> None:
        if event.severity >= Severity.WARNING:
            who = f" {event.task}" if event.task else ""
            print(f"[{format_ns(event.t_ns):>10}] {event.severity.name} {event.kind}{who}: "
                  f"{event.detail}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    apply_board(args)
    config, _, bundled = open_mission(args)
    args.bundle_status = bundle_status(bundled)
    clock_kind = ClockKind(args.clock) if args.clock else config.runtime.clock
    if clock_kind is ClockKind.EXTERNAL and config.bus is None:
        print("flightai: error: the external clock is driven by ticks on the bus, and this "
              "mission has no [bus] section", file=sys.stderr)
        return 2
    prepare_process(config)  # before any thread starts: they inherit it
    injections = Injections()
    if args.inject_faults is not None:  # checked before any socket is bound
        injections = load_injections(args.inject_faults, config)
        print(f"flightai: FAULT INJECTION ARMED: {len(injections.overruns)} forced overruns, "
              f"{len(injections.nan_outputs)} NaN outputs from {args.inject_faults}")
    digest = DigestSink()
    clock = make_clock(config, clock_kind)
    bus = BusServer(config, clock) if config.bus is not None else None
    try:
        return _run_with(config, args, clock, clock_kind, digest, bus, injections)
    finally:
        if bus is not None:
            bus.close()


def _run_with(config: MissionConfig, args: argparse.Namespace, clock: Clock,
              clock_kind: ClockKind, digest: DigestSink, bus: BusServer | None,
              injections: Injections) -> int:
    notifier = Notifier()  # sd_notify under systemd, a no-op elsewhere
    watchdog = WatchdogSink(notifier, config.name, clock.lateness_ns, config.runtime.minor_frame_ns)
    sinks: list[OutputSink] = [_ConsoleSink(digest), watchdog]
    sources: list[InputSource] = []
    if bus is not None:
        sinks.append(bus.sink)
        sources.append(bus.input)
    local = make_source(config)
    if local is not None:
        sources.append(local)
    loaded = load_tasks(config)
    executive = build_executive(config, clock=clock, source=ChainSource(sources), sinks=sinks,
                                workers=args.workers, loaded=loaded,
                                injected_overruns=injections.overruns,
                                injected_nan=injections.nan_outputs)
    if bus is not None:
        bus.attach(executive, loaded.reports, bundle=args.bundle_status)
        bus.start()
        assert config.bus is not None
        print(f"flightai: bus: sensors {config.bus.sensors}, outputs {config.bus.outputs}, "
              f"commands {config.bus.commands}"
              + (" (CURVE)" if config.bus.curve is not None else ""))
    duration_ms = args.duration_ms if args.duration_ms is not None else config.runtime.duration_ms
    duration_ns = duration_ms * NS_PER_MS if duration_ms else None
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: _stop(notifier, executive))
    print(f"flightai: {config.name} READY; running on the {clock_kind.value} clock with "
          f"{args.workers or config.runtime.workers} workers"
          + (f" from bundle {args.bundle_status['id']} version {args.bundle_status['version']}"
             if args.bundle_status else "")
          + (f" for {format_ns(duration_ns)}" if duration_ns else " until stopped (Ctrl-C)"))
    notifier.send("READY=1", f"STATUS={config.name}: READY")
    done = threading.Event()
    if not args.quiet:
        threading.Thread(target=_status_loop, args=(executive, done), daemon=True).start()
    wall_start = time.monotonic()
    try:
        executive.run(duration_ns)
    finally:
        done.set()
        notifier.send("STOPPING=1")
        notifier.close()
    wall_s = time.monotonic() - wall_start
    _print_summary(executive, digest, wall_s)
    return 0


def _stop(notifier: Notifier, executive: Executive) -> None:
    """SIGINT/SIGTERM: tell systemd we are stopping, then stop at the next frame boundary."""
    notifier.send("STOPPING=1")
    executive.stop()


def _status_loop(executive: Executive, done: threading.Event) -> None:
    """Print a status line each second; reads counters the frame loop is updating."""
    while not done.wait(1.0):
        h = executive.health
        overruns = sum(t.overruns for t in h.tasks.values())
        rejects = sum(dict(h.rejects).values())
        print(f"t={format_ns(executive.t_ns):>10} mode={h.mode.value} frames={h.frames} "
              f"overruns={overruns} rejects={rejects} "
              f"late_max={format_ns(h.wall_lateness_max_ns)}", file=sys.stderr)


def _print_summary(executive: Executive, digest: DigestSink, wall_s: float) -> None:
    h = executive.health
    print(f"stopped at mission time {format_ns(executive.t_ns)} after {h.frames} frames "
          f"({wall_s:.2f} s wall); mode {h.mode.value}")
    print(f"  {'task':<16} {'released':>8} {'published':>9} {'held':>5} {'skipped':>7} "
          f"{'overruns':>8} {'guard':>5} {'errors':>6} {'p50 exec':>9} {'p99 exec':>9}")
    for name, t in h.tasks.items():
        p50, p99 = t.wall_exec_p50_p99_ns()
        print(f"  {name:<16} {t.releases:>8} {t.published:>9} {t.held:>5} {t.skipped:>7} "
              f"{t.overruns:>8} {t.guard_trips:>5} {t.errors:>6} "
              f"{format_ns(p50):>9} {format_ns(p99):>9}"
              + ("  (on fallback)" if t.on_fallback else ""))
    rejects = ", ".join(f"{k}={v}" for k, v in sorted(h.rejects.items())) or "none"
    print(f"  inputs accepted {h.inputs_accepted}, rejected: {rejects}; "
          f"events {h.events.total} ({h.events.suppressed} throttled); "
          f"frame slips {h.frame_slips}")
    print(f"  output digest {digest.hexdigest()} ({digest.count} publications)")


def _run_ground(command: str, module: str, argv: list[str]) -> int:
    """Run a ground-side command, imported only now; without the extra, say how to get it."""
    try:
        ground = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        print(HIL_HINT.format(command=command, missing=exc.name), file=sys.stderr)
        return 2
    status: int = ground.main(argv)
    return status


if __name__ == "__main__":
    sys.exit(main())
