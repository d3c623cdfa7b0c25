"""``flightai hil campaign``, ``flightai hil case`` and ``flightai hil qualify``.

:func:`add_commands` registers them on the ``flightai hil`` parser (``hil.cli``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hil.campaign.cases import CampaignSpec
from hil.campaign.store import ResultsStore, StoreMismatch


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``campaign``, ``case`` and ``qualify`` on ``flightai hil``'s subparsers."""
    camp = sub.add_parser("campaign", help="Monte Carlo campaign of a mission (or a replay "
                                           "set of recordings) on Dask")
    what = camp.add_mutually_exclusive_group(required=True)
    what.add_argument("--mission", type=Path, help="the mission file to fly")
    what.add_argument("--recordings", metavar="DIR_OR_GLOB",
                      help="replay these recordings (a folder of .mcap or a glob) instead")
    camp.add_argument("--cases", type=positive, default=100,
                      help="number of cases (default 100)")
    _case_options(camp, required=False)
    _cluster_options(camp)
    camp.add_argument("--tolerance", dest="tolerances", action="append", default=[],
                      metavar="SIGNAL=ABS[,REL]",
                      help="replay sets: allowed difference across platforms (repeatable)")
    camp.add_argument("--out", type=Path, required=True, help="results folder (resumable)")
    camp.set_defaults(handler=_cmd_campaign)
    one = sub.add_parser("case", help="fly one campaign case alone, models loaded afresh")
    one.add_argument("--mission", type=Path, required=True)
    _case_options(one, required=True)
    one.add_argument("--json", type=Path, help="also write the case record here")
    one.set_defaults(handler=_cmd_case)
    _add_qualify(sub)


def positive(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def non_negative(text: str) -> int:
    """An argparse type: an integer ≥ 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _case_options(parser: argparse.ArgumentParser, required: bool) -> None:
    entropy = "--seed-entropy" if required else "--seed"
    parser.add_argument(entropy, dest="entropy", type=non_negative, default=None if required else 1,
                        required=required,
                        help="root numpy SeedSequence entropy" + ("" if required else
                                                                  " (default 1)"))
    if required:
        parser.add_argument("--spawn-key", type=non_negative, required=True,
                            help="the case's index")
    parser.add_argument("--stress-sun", action="store_true", help="stress sun dispersion")
    parser.add_argument("--nominal", action="store_true", help="no dispersion (noise seeded)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="mission override (repeatable)")


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="an existing Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=positive, default=os.cpu_count() or 1,
                        help="local cluster worker processes, one thread each "
                             "(default: the CPU count)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar's update function (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _error(command: str, exc: BaseException) -> int:
    print(f"flightai hil {command}: error: {exc}", file=sys.stderr)
    return 1


def _interrupted(out: Path, finished: str) -> int:
    print(f"flightai hil campaign: interrupted; finished {finished} are in {out}; "
          "run the same command again to resume", file=sys.stderr)
    return 130


def _cmd_campaign(args: argparse.Namespace) -> int:
    if args.recordings is not None:
        return _cmd_replay_set(args)
    from flightai.errors import FlightaiError
    from hil.campaign.worker import campaign_config

    try:  # refuse a bad mission or a folder of another campaign before starting a cluster
        spec = CampaignSpec.from_file(args.mission, overrides=args.overrides,
                                      entropy=args.entropy, cases=args.cases,
                                      stress_sun=args.stress_sun, nominal=args.nominal)
        campaign_config(spec)
        ResultsStore(args.out, spec.manifest())
    except (OSError, FlightaiError, StoreMismatch) as exc:
        return _error("campaign", exc)
    from hil.campaign.cluster import open_client  # Dask loads only for the commands using it
    from hil.campaign.runner import CaseFailed, run_campaign

    try:
        with open_client(args.scheduler, args.workers) as client, \
                progress_bar(not args.no_progress, "cases") as update:
            result = run_campaign(spec, args.out, client, progress=update)
    except (CaseFailed, OSError) as exc:  # OSError: the scheduler cannot be reached
        return _error("campaign", exc)
    except KeyboardInterrupt:
        return _interrupted(args.out, "cases")
    report, timing = result.report, result.timing
    low, high = report["success_rate_ci95"]
    print(f"flightai hil campaign: {report['successes']}/{report['runs']} successful "
          f"(95 % CI {100 * low:.1f}-{100 * high:.1f} %); {timing['cases_run']} flown, "
          f"{timing['cases_skipped']} already stored; {args.out}/report.html")
    for failure in report["failures"]:
        print(f"  case {failure['index']}: {'; '.join(failure['failures'])}\n"
              f"    {failure['replay']}")
    return 0


def _cmd_replay_set(args: argparse.Namespace) -> int:
    from hil.campaign.cluster import open_client
    from hil.campaign.replays import ReplayFailed, find_recordings, run_replay_set
    from hil.replay.compare import Tolerance

    try:
        find_recordings(args.recordings)
        for item in args.tolerances:
            Tolerance.parse(item)
    except (OSError, ValueError) as exc:
        return _error("campaign", exc)
    try:
        with open_client(args.scheduler, args.workers) as client, \
                progress_bar(not args.no_progress, "replays") as update:
            replays = run_replay_set(args.recordings, args.out, client,
                                     overrides=args.overrides, tolerances=args.tolerances,
                                     progress=update)
    except (ReplayFailed, OSError) as exc:
        return _error("campaign", exc)
    except KeyboardInterrupt:
        return _interrupted(args.out, "replays")
    print(replays.summary())
    return 0 if replays.ok else 1


def _cmd_case(args: argparse.Namespace) -> int:
    from flightai.errors import FlightaiError
    from hil.campaign.worker import fly_case

    try:
        spec = CampaignSpec.from_file(args.mission, overrides=args.overrides,
                                      entropy=args.entropy, cases=args.spawn_key + 1,
                                      stress_sun=args.stress_sun, nominal=args.nominal)
        record = fly_case(spec.case(args.spawn_key), cached=False)
        if args.json is not None:
            args.json.write_text(json.dumps(record, indent=1) + "\n")
    except (OSError, FlightaiError) as exc:
        return _error("case", exc)
    flight = record["record"]
    print(f"flightai hil case {record['key']}: "
          + ("SUCCESS" if flight["success"] else "FAILURE: " + "; ".join(flight["failures"])))
    print(f"  output digest {flight['digest']}")
    return 0


def _add_qualify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("qualify", help="judge a contributed model against the flight "
                                            "baseline (contract, then paired campaigns)")
    parser.add_argument("candidate", type=Path, metavar="CANDIDATE.onnx")
    parser.add_argument("--role", choices=("guidance", "perception"), required=True)
    parser.add_argument("--mission", type=Path, default=Path("models/ltd1/l2.toml"),
                        help="the baseline mission (default models/ltd1/l2.toml)")
    parser.add_argument("--cases", type=positive, default=50, help="paired cases (default 50)")
    parser.add_argument("--seed", dest="entropy", type=non_negative, default=1,
                        help="root SeedSequence entropy (default 1)")
    parser.add_argument("--stress-sun", action="store_true")
    _cluster_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="scorecard and campaigns folder")
    parser.set_defaults(handler=_cmd_qualify)


QUALIFY_EXIT = {"better": 0, "equivalent": 0, "worse": 1, "rejected": 1, "inconclusive": 3}
"""``flightai hil qualify``'s exit status for each verdict."""


def _cmd_qualify(args: argparse.Namespace) -> int:
    from flightai.errors import FlightaiError
    from hil.campaign.cluster import open_client
    from hil.campaign.qualify import qualify, scorecard_path
    from hil.campaign.runner import CaseFailed

    try:
        with progress_bar(not args.no_progress, "cases") as update:
            card = qualify(args.candidate, args.role, args.mission, args.out,
                           lambda: open_client(args.scheduler, args.workers),
                           cases=args.cases, entropy=args.entropy, stress_sun=args.stress_sun,
                           progress=update)
    except (OSError, ValueError, FlightaiError, CaseFailed) as exc:
        print(f"flightai hil qualify: error: {exc}", file=sys.stderr)
        return 1
    for check in card["contract"]:
        ok = {True: "pass", False: "FAIL", None: "info"}[check["ok"]]
        print(f"  contract {ok:4s} {check['name']}: {check['detail']}")
    for c in card.get("criteria", []):
        print(f"  {c['verdict']:13s} {c['label']}")
    if card["verdict"] == "inconclusive":
        print(f"  the intervals are too wide for the margins: fly more cases (--cases; "
              f"{args.cases} now, at least 6, 50 by default); the flown ones are reused")
    print(f"flightai hil qualify: {card['verdict'].upper()}; "
          f"{scorecard_path(args.out, card['sha256'], 'html')}")
    return QUALIFY_EXIT[card["verdict"]]
