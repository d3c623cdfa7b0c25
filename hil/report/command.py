"""``flightai hil report RUN.MCAP``: judge a recording, write the HTML report and JUnit XML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_VERDICTS = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "verdicts.toml"


def add_parser(sub: Any) -> None:
    """Add the ``report`` subcommand to ``flightai hil``'s subparsers."""
    report = sub.add_parser("report", help="judge a recording with a verdict file; write an "
                                           "HTML report and JUnit XML (exit 1 if a check fails)")
    report.add_argument("recording", type=Path, metavar="RUN.MCAP")
    report.add_argument("--verdicts", type=Path, default=DEFAULT_VERDICTS, metavar="FILE",
                        help="verdict file (default: models/ltd1/verdicts.toml)")
    report.add_argument("--html", type=Path, metavar="REPORT.HTML",
                        help="write the HTML report here")
    report.add_argument("--junit", type=Path, metavar="REPORT.XML",
                        help="write JUnit XML here (one test case per check)")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit status 0: every check passed; 1: one failed.

    Status 2: a bad verdict file or recording, or a report that cannot be written.
    """
    from hil.record.reader import RecordingError, open_recording
    from hil.verdict import Streams, VerdictFileError, evaluate, load_verdicts

    try:
        verdicts = load_verdicts(args.verdicts)
    except (VerdictFileError, OSError) as exc:
        print(f"flightai hil report: error: {exc}", file=sys.stderr)
        return 2
    try:
        recording = open_recording(args.recording)
    except RecordingError as exc:
        print(f"flightai hil report: error: {exc}", file=sys.stderr)
        return 2
    streams = Streams(recording)
    results = evaluate(verdicts, streams)
    failed = [r for r in results if not r.passed]
    for r in results:
        print(f"  {'PASS' if r.passed else 'FAIL'}  {r.check.name}: {r.reason}")
    try:
        if args.html is not None:
            from hil.report.html import write_report

            write_report(args.html, streams, results, title=verdicts.title,
                         recording=args.recording.name)
        if args.junit is not None:
            from hil.report.junit import write_junit

            write_junit(args.junit, results, verdicts.title, str(args.recording))
    except OSError as exc:  # e.g. a folder that does not exist
        print(f"flightai hil report: error: {exc}", file=sys.stderr)
        return 2
    written = ", ".join(str(p) for p in (args.html, args.junit) if p is not None)
    print(f"flightai hil report: {verdicts.title}: "
          + (f"FAIL, {len(failed)} of {len(results)} checks failed" if failed
             else f"PASS, {len(results)} checks")
          + (f"; wrote {written}" if written else ""))
    return 1 if failed else 0
