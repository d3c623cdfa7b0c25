"""``--board FILE`` on the command line: a board profile's overrides, applied before ``--set``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flightai.config.board import load_board


def add_board_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--board FILE`` (a board profile applied before ``--set``)."""
    parser.add_argument("--board", type=Path, metavar="BOARD.toml",
                        help="apply a board profile (deploy/boards/*.toml) before --set")


def apply_board(args: argparse.Namespace) -> None:
    """Put the overrides of ``--board`` (if given) before ``--set``; warn on its environment."""
    if getattr(args, "board", None) is None:
        return
    board = load_board(args.board)
    for line in board.environment_warnings():
        print(f"flightai: WARNING: {line}", file=sys.stderr)
    args.overrides = board.overrides + list(args.overrides)
