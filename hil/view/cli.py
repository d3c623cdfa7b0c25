"""``flightai hil view``: serve a running runtime's outputs live to Foxglove."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from typing import Any

import zmq

from hil.view.live import DEFAULT_PORT, LOOPBACK, LiveView


def add_parser(sub: Any) -> None:
    """Add ``view`` to the ``flightai hil`` subcommands (``sub``: argparse's subparsers)."""
    view = sub.add_parser("view", help="serve a running runtime's outputs and their views "
                                       "live to Foxglove (WebSocket, loopback by default)")
    view.add_argument("--outputs", required=True, metavar="ENDPOINT",
                      help="the runtime's outputs endpoint, e.g. tcp://127.0.0.1:5551")
    view.add_argument("--host", default=LOOPBACK,
                      help=f"interface to listen on (default {LOOPBACK}; 0.0.0.0 lets anyone "
                           "on the network watch)")
    view.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help=f"WebSocket port (default {DEFAULT_PORT}; 0 picks a free one)")
    view.add_argument("--topic", dest="topics", action="append", metavar="PREFIX",
                      help="serve only topics starting with PREFIX (repeatable; default all)")
    view.add_argument("--duration-s", type=float,
                      help="stop after this long (default: until SIGINT/SIGTERM)")
    view.set_defaults(handler=run_view)


def run_view(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (or ``--duration-s``); returns the exit status."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if args.duration_s is not None:
        timer = threading.Timer(args.duration_s, stop.set)
        timer.daemon = True
        timer.start()
    try:
        live = LiveView(args.outputs, host=args.host, port=args.port,
                        prefixes=args.topics or ("",))
    except zmq.ZMQError as exc:
        print(f"flightai hil view: error: --outputs {args.outputs}: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:  # the port is taken, the host is not ours
        print(f"flightai hil view: error: cannot serve on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    with live:
        print(f"flightai hil view: {args.outputs} -> ws://{args.host}:{live.port} "
              "(Foxglove: Open connection, Foxglove WebSocket)", flush=True)
        if not _is_loopback(args.host):
            print(f"flightai hil view: warning: {args.host} is not loopback: anyone who can "
                  "reach this port can watch", file=sys.stderr)
        live.run(stop)
    print(f"flightai hil view: stopped after {live.messages} messages "
          f"({live.refused} refused by the wire decoder)")
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
