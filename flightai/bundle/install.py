"""``flightai bundle install``: A/B activation, crash-safe at every step.

The steps, in order (each name is passed to ``on_step`` just before it runs, so a
test can stop the process at every boundary)::

    verify    read the bundle once, check signature, files and rollback floor
    retire    forget the inactive slot in state.json (it is about to be rewritten)
    write     write slots/<X>/mission.bundle.tmp and fsync it
    rename    rename it to slots/<X>/mission.bundle, fsync the folder
    probe     in a child process: verify again, load every model and task, warm up
              to READY (``flightai bundle probe``); the child must print READY <id>
    activate  replace state.json: <X> active, the floor raised to this version
    done

Only ``activate`` changes which bundle is active, by one atomic rename; a crash
anywhere before it leaves the last good bundle active, and a bundle that does
not reach READY is never activated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from flightai.bundle.archive import DEFAULT_LIMITS, Limits
from flightai.bundle.keys import TrustedKey
from flightai.bundle.refusal import Refusal, refuse
from flightai.bundle.state import (
    SLOTS,
    SlotRecord,
    State,
    check_rollback,
    commit_temp,
    read_state,
    slot_file,
    write_state,
    write_temp,
)
from flightai.bundle.verify import VerifiedBundle, read_bundle_file, verify_bundle

STEPS = ("verify", "retire", "write", "rename", "probe", "activate", "done")
READY_PREFIX = "READY "


@dataclass(frozen=True)
class InstallResult:
    """What an install did: the slot it activated and the bundle now active."""

    slot: str
    bundle: VerifiedBundle
    already_active: bool


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Create the slot folders and hold ``install.lock``; refuse a second install."""
    try:
        for slot in SLOTS:
            slot_file(state_dir, slot).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / "install.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise refuse(Refusal.BAD_STATE, f"cannot use the state folder {state_dir}: "
                     f"{exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refuse(Refusal.BAD_STATE, f"another install holds {state_dir}/install.lock") \
                from None
        yield
    finally:
        os.close(fd)


def install(path: Path, state_dir: Path, trusted: Sequence[TrustedKey],
            trust_args: Sequence[Path], *, ready_timeout_s: float = 300.0,
            limits: Limits = DEFAULT_LIMITS, on_step: Callable[[str], None] | None = None,
            board: Path | None = None) -> InstallResult:
    """Install the bundle at ``path`` into the inactive slot and activate it once READY.

    Args:
        path: the bundle file.
        state_dir: the state folder (created if missing).
        trusted: the accepted keys.
        trust_args: the ``--trust`` paths, handed to the probe child.
        ready_timeout_s: how long the child may take to reach READY (wall seconds).
        limits: size bounds.
        on_step: called with each step's name just before it runs.
        board: a board profile the probe applies, as the service will (``--board``).

    Raises:
        BundleError: refused (signature, files, rollback), or ``not_ready``: the
            bundle did not reach READY; the last good bundle stays active.
    """
    step = on_step or (lambda _name: None)
    with _locked(state_dir):
        step("verify")
        data = read_bundle_file(path, limits)
        verified = verify_bundle(data, trusted, limits)
        state = read_state(state_dir)
        active = state.record(state.active)
        if active is not None and active.bundle_id == verified.bundle_id:
            assert state.active is not None
            return InstallResult(state.active, verified, already_active=True)
        check_rollback(state, verified.manifest.version, verified.bundle_id)
        target = next(s for s in SLOTS if s != state.active)
        step("retire")
        if target in state.slots:
            state = state.without(target)
            write_state(state_dir, state)
        step("write")
        final = slot_file(state_dir, target)
        tmp = write_temp(final, data)
        step("rename")
        commit_temp(tmp, final)
        step("probe")
        _probe(final, verified, state_dir, trust_args, ready_timeout_s, board)
        step("activate")
        record = SlotRecord(verified.bundle_id, verified.manifest.version,
                            verified.manifest.mission,
                            dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        write_state(state_dir, replace(state, active=target, slots={**state.slots, target: record},
                                       floor_version=verified.manifest.version,
                                       floor_bundle_id=verified.bundle_id))
        step("done")
    return InstallResult(target, verified, already_active=False)


def _probe(bundle: Path, verified: VerifiedBundle, state_dir: Path,
           trust_args: Sequence[Path], timeout_s: float, board: Path | None) -> None:
    """Load and warm up the written slot in a child process; refuse unless it says READY."""
    command = [sys.executable, "-m", "flightai", "bundle", "probe", str(bundle),
               "--state-dir", str(state_dir)]
    for trust in trust_args:
        command += ["--trust", str(trust)]
    if board is not None:
        command += ["--board", str(board)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise refuse(Refusal.NOT_READY, f"bundle {verified.bundle_id[:16]} did not reach READY "
                     f"within {timeout_s:g} s; the last good bundle stays active") from None
    expected = READY_PREFIX + verified.bundle_id
    if done.returncode != 0 or expected not in done.stdout.splitlines():
        why = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise refuse(Refusal.NOT_READY, f"bundle {verified.bundle_id[:16]} did not reach READY "
                     f"(exit {done.returncode}: {' / '.join(why)}); the last good bundle stays "
                     "active")


def status_lines(state_dir: Path) -> list[str]:
    """``flightai bundle status``: the active and previous slots, and the rollback floor."""
    state: State = read_state(state_dir)
    lines = [f"state {state_dir}: rollback floor version {state.floor_version}"]
    for label, slot in (("active", state.active), ("previous", state.previous)):
        record = state.record(slot)
        if record is None:
            lines.append(f"  {label:<8} none")
            continue
        on_disk = slot_file(state_dir, slot or "").is_file()
        lines.append(f"  {label:<8} slot {slot}: bundle {record.bundle_id} version "
                     f"{record.version} mission {record.mission!r} installed "
                     f"{record.installed_utc}" + ("" if on_disk else " (FILE MISSING)"))
    return lines

