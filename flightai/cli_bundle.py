"""Bundle verbs of the ``flightai`` command, and ``--bundle``/``--active`` for check and run.

``flightai bundle keygen|build|verify|install|status|probe``; see ``docs/bundles.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flightai.bundle.archive import Limits
from flightai.bundle.build import build_bundle
from flightai.bundle.install import READY_PREFIX, install, status_lines
from flightai.bundle.keys import generate, load_signing_key, load_trusted
from flightai.bundle.mission import BundledMission, open_bundle
from flightai.bundle.refusal import Refusal, refuse
from flightai.bundle.state import check_rollback, default_state_dir, read_state, slot_file
from flightai.bundle.verify import read_bundle_file, verify_bundle
from flightai.cli_board import add_board_option, apply_board
from flightai.config import load_mission
from flightai.config.schema import MissionConfig
from flightai.errors import ConfigError


def _trust_and_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust", type=Path, action="append", default=[], metavar="KEY.pub",
                        help="a trusted Ed25519 public key, or a folder of *.pub (repeatable)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="bundle state folder: slots and rollback floor (default "
                             "$FLIGHTAI_STATE_DIR or /var/lib/flightai)")


def add_bundle_options(parser: argparse.ArgumentParser) -> None:
    """``--bundle FILE`` / ``--active`` and their keys, for ``check`` and ``run``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bundle", type=Path, metavar="FILE",
                        help="a signed bundle instead of a mission file (verified first)")
    source.add_argument("--active", action="store_true",
                        help="the bundle active in --state-dir (what bundle install activated)")
    _trust_and_state(parser)


def open_mission(args: argparse.Namespace) -> tuple[MissionConfig, Path, BundledMission | None]:
    """The mission named on the command line: a TOML file, a bundle, or the active bundle.

    Raises:
        ConfigError: no mission given, or both a file and a bundle.
        BundleError: the bundle is refused.
    """
    state_dir = args.state_dir or default_state_dir()
    bundle_path = args.bundle
    if args.active:
        state = read_state(state_dir)
        if state.active is None:
            raise refuse(Refusal.BAD_STATE, f"no active bundle in {state_dir}")
        bundle_path = slot_file(state_dir, state.active)
    if bundle_path is None:
        if args.mission is None:
            raise ConfigError("MISSION", "a mission file, --bundle FILE or --active", "nothing")
        return load_mission(args.mission, args.overrides), args.mission, None
    if args.mission is not None:
        raise ConfigError("MISSION", "a mission file or a bundle, not both",
                          f"{args.mission} and {bundle_path}")
    bundled = open_bundle(bundle_path, load_trusted(args.trust), state_dir, args.overrides)
    return bundled.config, bundle_path, bundled


def bundle_status(bundled: BundledMission | None) -> dict[str, Any] | None:
    """The ``bundle`` map of health telemetry (None when not run from a bundle)."""
    if bundled is None:
        return None
    return {"id": bundled.bundle.bundle_id, "version": bundled.bundle.manifest.version,
            "mission": bundled.bundle.manifest.mission}


def add_bundle_commands(sub: Any) -> None:
    """Register ``flightai bundle ...`` on the top-level subparsers."""
    bundle = sub.add_parser("bundle", help="signed mission bundles: keygen, build, verify, "
                            "install, status")
    verbs = bundle.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)
    keygen = verbs.add_parser("keygen", help="write NAME.key (Ed25519 secret, 0600) and NAME.pub")
    keygen.add_argument("name")
    keygen.add_argument("--dir", type=Path, default=Path("."), help="where (default: here)")
    keygen.set_defaults(handler=_cmd_keygen)
    build = verbs.add_parser("build", help="pack and sign a mission into one file")
    build.add_argument("mission", type=Path)
    build.add_argument("--key", type=Path, required=True, help="the Ed25519 secret key file")
    build.add_argument("--version", type=int, required=True, dest="bundle_version",
                       help="bundle version, an integer larger than any installed before")
    build.add_argument("--include", action="append", default=[], metavar="PATH",
                       help="another file or folder (relative to the mission) to pack")
    build.add_argument("-o", "--output", type=Path, required=True)
    build.set_defaults(handler=_cmd_build)
    verify = verbs.add_parser("verify", help="check signature, files and rollback; load nothing")
    verify.add_argument("bundle", type=Path)
    _trust_and_state(verify)
    verify.set_defaults(handler=_cmd_verify)
    inst = verbs.add_parser("install", help="install into the inactive slot; activate once READY")
    inst.add_argument("bundle", type=Path)
    _trust_and_state(inst)
    inst.add_argument("--ready-timeout-s", type=float, default=300.0,
                      help="wall time allowed to load and warm up (default 300)")
    add_board_option(inst)  # the READY probe loads what the service will run
    inst.set_defaults(handler=_cmd_install)
    status = verbs.add_parser("status", help="the active and previous bundles")
    status.add_argument("--state-dir", type=Path, default=None)
    status.set_defaults(handler=_cmd_status)
    probe = verbs.add_parser("probe", help="verify, load and warm up a bundle to READY, then "
                             "exit (what install runs in a child process)")
    probe.add_argument("bundle", type=Path)
    _trust_and_state(probe)
    add_board_option(probe)
    probe.set_defaults(handler=_cmd_probe, overrides=[])


def _cmd_keygen(args: argparse.Namespace) -> int:
    secret, public = generate(args.dir, args.name)
    print(f"key id {load_trusted([public])[0].id}\n  {public}\n  {secret} (mode 0600: keep it "
          "off the boards)")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    data, manifest = build_bundle(args.mission, load_signing_key(args.key), args.bundle_version,
                                  args.include)
    tmp = args.output.with_name(args.output.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(args.output)
    except OSError as exc:
        raise refuse(Refusal.BUILD, f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"{args.output}: mission {manifest.mission!r} version {manifest.version}, "
          f"{len(manifest.files)} files, {len(data)} bytes, key {manifest.key_id[:16]}")
    for entry in manifest.files:
        print(f"  {entry.sha256[:16]} {entry.size:>10} {entry.path}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    limits = Limits()
    verified = verify_bundle(read_bundle_file(args.bundle, limits), load_trusted(args.trust),
                             limits)
    state_dir = args.state_dir or default_state_dir()
    state = read_state(state_dir)
    check_rollback(state, verified.manifest.version, verified.bundle_id)
    print(f"OK: {verified.describe()}")
    print(f"  id {verified.bundle_id}; rollback floor in {state_dir}: version "
          f"{state.floor_version}")
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    state_dir = args.state_dir or default_state_dir()
    result = install(args.bundle, state_dir, load_trusted(args.trust), args.trust,
                     ready_timeout_s=args.ready_timeout_s, board=args.board)
    verb = "already active" if result.already_active else "installed and activated"
    print(f"{result.bundle.describe()}: {verb} in slot {result.slot}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print("\n".join(status_lines(args.state_dir or default_state_dir())))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from flightai.runtime import build_executive  # onnxruntime: only when probing

    args.mission, args.active = None, False
    apply_board(args)
    config, _, bundled = open_mission(args)
    assert bundled is not None
    build_executive(config)  # loads every model and task and warms them up to READY
    print(READY_PREFIX + bundled.bundle.bundle_id, flush=True)
    return 0
