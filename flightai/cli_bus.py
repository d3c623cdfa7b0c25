"""Bus verbs of the ``flightai`` command: ``status``, ``cmd`` and ``keys generate``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import zmq.auth

from flightai.client import DEFAULT_COMMANDS, Client, ClientKeys
from flightai.errors import BusError


def add_bus_commands(sub: Any) -> None:
    """Register the bus verbs on the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--commands", default=DEFAULT_COMMANDS,
                        help=f"the runtime's command endpoint (default {DEFAULT_COMMANDS})")
    common.add_argument("--server-key", type=Path, help="the runtime's public key file (CURVE)")
    common.add_argument("--client-key", type=Path, help="our .key_secret file (CURVE)")
    common.add_argument("--name", default="flightai-cli",
                        help="our routing id (our command sequence space without CURVE)")
    common.add_argument("--timeout-ms", type=int, default=2000)
    common.add_argument("--json", action="store_true", help="print the raw reply as JSON")

    status = sub.add_parser("status", parents=[common],
                            help="ask a running runtime for its status")
    status.set_defaults(handler=_cmd_status)
    cmd = sub.add_parser("cmd", parents=[common], help="send a command and print its ack",
                         description="Commands: status, set_mode mode=SAFE|NOMINAL, "
                                     "restore_primary task=NAME, reset_counters, stop.")
    cmd.add_argument("command")
    cmd.add_argument("args", nargs="*", metavar="KEY=VALUE")
    cmd.add_argument("--seq", type=int, help="sequence number (default: time in microseconds)")
    cmd.set_defaults(handler=_cmd_cmd)

    keys = sub.add_parser("keys", help="CURVE key pairs")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = keys_sub.add_parser("generate", help="write NAME.key and NAME.key_secret (0600)")
    generate.add_argument("directory", type=Path)
    generate.add_argument("name")
    generate.set_defaults(handler=_cmd_keys_generate)


def _client(args: argparse.Namespace, first_seq: int = 1) -> Client:
    keys = None
    if args.server_key or args.client_key:
        if not (args.server_key and args.client_key):
            raise BusError("CURVE needs both --server-key and --client-key")
        keys = ClientKeys.from_files(args.server_key, args.client_key)
    return Client(commands=args.commands, keys=keys, name=args.name,
                  timeout_ms=args.timeout_ms, first_command_seq=first_seq)


def _fresh_seq() -> int:
    """A sequence number larger than any this client sent before (microseconds since epoch)."""
    import time

    return time.time_ns() // 1000


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args, _fresh_seq()) as client:
        status = client.status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"mode {status.get('mode')} at t={status.get('t_ns', 0) / 1e9:.3f} s, "
          f"{status.get('frames')} frames, {status.get('frame_slips')} slips")
    for name, task in status.get("tasks", {}).items():
        print(f"  {name:<16} published {task['published']:>7}  overruns {task['overruns']:>4}  "
              f"guard trips {task['guard_trips']:>4}  p99 {task['wall_exec_p99_ns'] / 1e3:.1f} us"
              + ("  ON FALLBACK" if task.get("on_fallback") else ""))
    bus = status.get("bus", {})
    print(f"  bus: received {bus.get('received')}, rejects {bus.get('rejects')}, "
          f"secure {bus.get('secure')}")
    return 0


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BusError(f"command arguments are KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _cmd_cmd(args: argparse.Namespace) -> int:
    seq = args.seq if args.seq is not None else _fresh_seq()
    with _client(args) as client:
        ack = client.command(args.command, seq=seq, **_parse_args(args.args))
    if args.json:
        print(json.dumps(ack.__dict__, indent=2, sort_keys=True))
    elif ack.accepted:
        print(f"accepted (seq {ack.seq})" + (f": {ack.result}" if ack.result else ""))
    else:
        print(f"rejected (seq {ack.seq}): {ack.reason}: {ack.detail}")
    return 0 if ack.accepted else 1


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    args.directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(args.directory, args.name)
    os.chmod(secret_file, 0o600)
    public, _ = zmq.auth.load_certificate(public_file)
    print(f"public key  {public.decode()}\n  {public_file}\n  {secret_file} (mode 0600)")
    return 0
