"""``flightai hil ...``: the bench tools (``record``, ``recover``, ``replay``, ``compare``).

``flightai`` imports this module only when ``flightai hil`` runs, so a board
without the ``hil`` extra never loads it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from hil.campaign.cli import add_commands as add_campaign_commands
from hil.record.fingerprint import bit_exact
from hil.record.reader import RecordingError, open_recording
from hil.record.recorder import META_PLATFORM, Recorder, RecorderOptions
from hil.record.recover import NotARecording, recover
from hil.replay.cli import add_player_options, run_replay
from hil.replay.compare import Comparison, Tolerance, compare, recorded_publications
from hil.report.command import add_parser as add_report_parser
from hil.view.cli import add_parser as add_view_parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightai hil", description="bench and ground tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    record = sub.add_parser("record", help="record what a runtime publishes to an MCAP file")
    record.add_argument("--outputs", required=True, metavar="ENDPOINT",
                        help="the runtime's outputs endpoint, e.g. tcp://127.0.0.1:5551")
    record.add_argument("--mission", type=Path,
                        help="store this mission file, its config and model hashes")
    record.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="mission override the runtime uses")
    record.add_argument("-o", "--output", type=Path, required=True, metavar="RUN.MCAP")
    record.add_argument("--duration-s", type=float,
                        help="stop after this long (default: until SIGINT/SIGTERM)")
    record.add_argument("--topic", dest="topics", action="append", metavar="PREFIX",
                        help="record only topics starting with PREFIX (repeatable; default all)")
    defaults = RecorderOptions()
    record.add_argument("--chunk-bytes", type=int, default=defaults.chunk_bytes,
                        help=f"close a chunk at this size (default {defaults.chunk_bytes})")
    record.add_argument("--chunk-time-s", type=float, default=defaults.chunk_time_s,
                        help="close a chunk open this long: a kill loses at most this much "
                             f"(default {defaults.chunk_time_s})")
    record.add_argument("--compression", choices=("none", "zstd", "lz4"), default="none")
    record.add_argument("--no-views", dest="views", action="store_false",
                        help="record the bus messages only, without their Foxglove views")
    record.set_defaults(handler=_cmd_record)
    fix = sub.add_parser("recover", help="salvage a recording torn by a kill into a valid file")
    fix.add_argument("torn", type=Path)
    fix.add_argument("fixed", type=Path)
    fix.set_defaults(handler=_cmd_recover)
    play = sub.add_parser("replay", help="replay a recording into a runtime (in-process or over "
                                         "the bus) and compare the outputs with the recorded ones")
    play.add_argument("recording", type=Path, metavar="RUN.MCAP")
    play.add_argument("--mission", type=Path,
                      help="replay with this mission file (default: the recorded mission, "
                           "paths resolved from its original folder)")
    play.add_argument("--workers", type=int, help="runtime worker threads")
    play.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY.PATH=VALUE", help="extra mission override (repeatable)")
    _tolerance_option(play)
    add_player_options(play)
    play.set_defaults(handler=run_replay)
    both = sub.add_parser("compare", help="compare the outputs of two recordings")
    both.add_argument("reference", type=Path, metavar="A.MCAP")
    both.add_argument("other", type=Path, metavar="B.MCAP")
    _tolerance_option(both)
    both.set_defaults(handler=_cmd_compare)
    add_campaign_commands(sub)
    add_report_parser(sub)
    add_view_parser(sub)
    return parser


def _tolerance_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tolerance", dest="tolerances", action="append", default=[],
                        type=Tolerance.parse, metavar="SIGNAL=ABS[,REL]",
                        help="allowed difference of a signal when the platforms differ "
                             "(SIGNAL * for every other one; repeatable; default: exact)")


def main(argv: list[str]) -> int:
    """Run one ``flightai hil`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.handler(args)
    return status


def _cmd_record(args: argparse.Namespace) -> int:
    options = RecorderOptions(chunk_bytes=args.chunk_bytes, chunk_time_s=args.chunk_time_s,
                              compression=args.compression, views=args.views)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Recorder(args.output, options) as recorder:
        if args.mission is not None:
            recorder.add_mission(args.mission, args.overrides)
        recorder.subscribe(args.outputs, args.topics or ("",))
        print(f"flightai hil record: {args.outputs} -> {args.output}", flush=True)
        stop.wait(args.duration_s)
    stats = recorder.stats
    print(f"flightai hil record: {sum(stats.messages.values())} messages on "
          f"{len(stats.messages)} topics in {stats.chunks} chunks; "
          f"{sum(stats.seq_gaps.values())} lost upstream (seq gaps), {stats.drops} dropped; "
          f"{stats.views} view messages ({stats.view_skips} skipped while behind)")
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    if args.torn.resolve() == args.fixed.resolve():
        print("flightai hil recover: error: write the recovered file to another path",
              file=sys.stderr)
        return 2
    try:
        report = recover(args.torn, args.fixed)
    except NotARecording as exc:
        print(f"flightai hil recover: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a torn file that is not there, a folder for the fixed one that is not
        print(f"flightai hil recover: error: {exc}", file=sys.stderr)
        return 2
    print(f"flightai hil recover: {args.fixed}: {report.summary()}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    try:
        reference, other = open_recording(args.reference), open_recording(args.other)
    except RecordingError as exc:
        print(f"flightai hil compare: error: {exc}", file=sys.stderr)
        return 2
    same = bit_exact(reference.metadata.get(META_PLATFORM, {}),
                     other.metadata.get(META_PLATFORM, {}))
    comparison = compare(recorded_publications(reference), recorded_publications(other),
                         bit_exact=same, tolerances=dict(args.tolerances))
    return _verdict("compare", comparison)


def _verdict(command: str, comparison: Comparison) -> int:
    print(f"flightai hil {command}: {comparison.summary()}")
    return 0 if comparison.ok else 1
