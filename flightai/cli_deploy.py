"""Deployment verbs of the ``flightai`` command: ``profile``, board profiles, the service side.

``flightai profile`` measures the mission's models on this board for
``flightai check --profile``; ``--board`` (on check, run and profile) applies a
board profile from ``deploy/boards/``; :func:`prepare_process` applies the
``[runtime.process]`` settings before ``flightai run`` starts any thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flightai.cli_board import add_board_option, apply_board
from flightai.cli_bundle import add_bundle_options, open_mission
from flightai.config.schema import MissionConfig
from flightai.errors import ProfileError
from flightai.profile import profile_mission
from flightai.service import apply_process


def add_deploy_commands(sub: Any) -> None:
    """Register ``flightai profile`` on the top-level subparsers."""
    profile = sub.add_parser("profile", help="time each model (and Python task) on this board "
                             "for check --profile")
    profile.add_argument("mission", type=Path, nargs="?")
    add_bundle_options(profile)  # profile what was installed: --active or --bundle FILE
    profile.add_argument("-o", "--output", type=Path, default=Path("profile.json"),
                         help="where to write the profile (default profile.json)")
    profile.add_argument("--runs", type=int, default=2000,
                         help="timed calls per model after warm-up (default 2000; p99.9 "
                              "needs at least 1000)")
    profile.add_argument("--seed", type=int, default=0, help="seed of the drawn inputs")
    profile.add_argument("--build-engines", action="store_true",
                         help="let TensorRT build its engine cache now (on the board, before "
                              "flight; flightai run never builds engines)")
    profile.add_argument("--models-only", action="store_true", help="do not time Python tasks")
    add_board_option(profile)
    profile.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY.PATH=VALUE", help="override a config value (repeatable)")
    profile.set_defaults(handler=_cmd_profile)


def prepare_process(config: MissionConfig) -> None:
    """Apply ``[runtime.process]`` (affinity, priority, memory lock) and say what was done."""
    for line in apply_process(config.runtime.process):
        print(f"flightai: {line}", file=sys.stderr if "WARNING" in line else sys.stdout)


def _cmd_profile(args: argparse.Namespace) -> int:
    apply_board(args)
    config, path, _ = open_mission(args)
    print(f"profiling {config.name!r}: {args.runs} timed runs each, after warm-up")
    profile = profile_mission(config, args.runs, args.seed, build_engines=args.build_engines,
                              python_tasks=not args.models_only,
                              progress=lambda line: print("  " + line, flush=True))
    try:
        args.output.write_text(profile.to_json(), encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"wrote {args.output}; admit the schedule with: flightai check "
          f"{path if args.mission else '--bundle/--active ...'} --profile {args.output}")
    return 0
