"""The board's bundle state directory: A/B slots, the active pointer, the rollback floor.

Layout (``--state-dir``, default ``$FLIGHTAI_STATE_DIR`` or ``/var/lib/flightai``)::

    state.json              the active pointer: which slot is active, what each
                            slot holds, the highest version ever activated
    slots/a/mission.bundle  slot A
    slots/b/mission.bundle  slot B
    install.lock            held (flock) by an install

``state.json`` is only ever replaced whole: written to a temporary file,
fsynced, renamed over the old one, and the folder fsynced. A reader sees the
old or the new state, never a mix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from flightai.bundle.refusal import Refusal, refuse

STATE_FILE = "state.json"
SLOTS = ("a", "b")
DEFAULT_STATE_DIR = Path("/var/lib/flightai")
_STATE_FORMAT = 1


def default_state_dir() -> Path:
    """``$FLIGHTAI_STATE_DIR`` when set, else ``/var/lib/flightai``."""
    env = os.environ.get("FLIGHTAI_STATE_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


def slot_file(state_dir: Path, slot: str) -> Path:
    """Where slot ``slot`` keeps its bundle."""
    return state_dir / "slots" / slot / "mission.bundle"


@dataclass(frozen=True)
class SlotRecord:
    """What a slot holds: the bundle's id and version, for which mission, since when."""

    bundle_id: str
    version: int
    mission: str
    installed_utc: str


@dataclass(frozen=True)
class State:
    """The contents of ``state.json``.

    Attributes:
        active: the active slot, or None before the first install.
        slots: what each slot holds (a slot being rewritten is absent).
        floor_version: the highest version ever activated: anything lower is a rollback.
        floor_bundle_id: the bundle that holds ``floor_version``.
    """

    active: str | None = None
    slots: Mapping[str, SlotRecord] = field(default_factory=dict)
    floor_version: int = 0
    floor_bundle_id: str = ""

    def record(self, slot: str | None) -> SlotRecord | None:
        """The record of ``slot``, if it holds a bundle."""
        return self.slots.get(slot) if slot is not None else None

    @property
    def previous(self) -> str | None:
        """The other slot, when it holds the last good bundle before the active one."""
        other = next((s for s in SLOTS if s != self.active), None)
        return other if self.active is not None and other in self.slots else None

    def without(self, slot: str) -> State:
        """A copy with ``slot`` forgotten (before it is rewritten)."""
        return replace(self, slots={k: v for k, v in self.slots.items() if k != slot})

    def encode(self) -> bytes:
        """The JSON bytes of ``state.json``."""
        doc = {"format": _STATE_FORMAT, "active": self.active,
               "slots": {k: asdict(v) for k, v in sorted(self.slots.items())},
               "floor_version": self.floor_version, "floor_bundle_id": self.floor_bundle_id}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _decode(data: bytes, path: Path) -> State:
    try:
        doc: Any = json.loads(data)
        slots = {k: SlotRecord(**v) for k, v in doc["slots"].items()}
        state = State(active=doc["active"], slots=slots, floor_version=int(doc["floor_version"]),
                      floor_bundle_id=str(doc["floor_bundle_id"]))
        ok = (doc["format"] == _STATE_FORMAT and set(slots) <= set(SLOTS)
              and (state.active is None or state.active in slots))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise refuse(Refusal.BAD_STATE, f"{path}: unreadable: {exc}") from exc
    if not ok:
        raise refuse(Refusal.BAD_STATE, f"{path}: inconsistent: {data[:200]!r}")
    return state


def read_state(state_dir: Path) -> State:
    """The state in ``state_dir`` (an empty state where there is none yet).

    Raises:
        BundleError: the file exists but cannot be read or makes no sense.
    """
    path = state_dir / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise refuse(Refusal.BAD_STATE, f"{path}: {exc.strerror or exc}") from exc
    return _decode(data, path)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` + ``.tmp`` and fsync it; return the temporary path."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def commit_temp(tmp: Path, path: Path) -> None:
    """Rename the temporary file over ``path`` (atomic) and fsync the folder."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_state(state_dir: Path, state: State) -> None:
    """Replace ``state.json`` atomically and durably."""
    path = state_dir / STATE_FILE
    commit_temp(write_temp(path, state.encode()), path)


def check_rollback(state: State, version: int, bundle_id: str) -> None:
    """Refuse a version below the floor, or another bundle claiming the floor's version.

    Raises:
        BundleError: ``rollback``, naming both versions.
    """
    if version < state.floor_version:
        raise refuse(Refusal.ROLLBACK, f"version {version} is lower than version "
                     f"{state.floor_version}, already installed on this board")
    if version == state.floor_version and bundle_id != state.floor_bundle_id:
        raise refuse(Refusal.ROLLBACK, f"version {version} is already installed here as "
                     f"bundle {state.floor_bundle_id[:16]}, not {bundle_id[:16]}")
