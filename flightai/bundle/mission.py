"""Open a verified bundle as a mission: config and code from verified bytes only.

Models never touch the disk: each :class:`ModelConfig` carries its verified
bytes, and sessions are built from them. Python modules and data files have to
be files (``importlib`` and the factories open paths), so they are written from
the verified bytes into a private folder: made by ``mkdtemp`` (mode 0700, a name
no one can predict or pre-create), each file created exclusively (``O_EXCL |
O_NOFOLLOW``, mode 0400), and removed when the process exits. Only this user or
root can change them between writing and loading, and either could change the
flightai installation itself; nothing that was not signed is ever in that folder.

A process killed outright (SIGKILL, a watchdog's SIGABRT) cannot remove its folder,
and a board restarted by its watchdog again and again would fill ``/tmp`` with
them. The folder's name carries its process id; opening a bundle first removes this
user's folders whose process is gone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from flightai.bundle.archive import DEFAULT_LIMITS, Limits
from flightai.bundle.build import code_targets
from flightai.bundle.keys import TrustedKey
from flightai.bundle.refusal import Refusal, refuse
from flightai.bundle.state import check_rollback, read_state
from flightai.bundle.verify import VerifiedBundle, read_bundle_file, verify_bundle
from flightai.config import parse_mission
from flightai.config.overrides import apply_overrides
from flightai.config.schema import MissionConfig
from flightai.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


_FOLDER_PREFIX = "flightai-bundle-pid"
_PID_LIMIT = 1 << 22  # Linux's largest pid_max


@dataclass(frozen=True)
class BundledMission:
    """A mission loaded from a verified bundle.

    Attributes:
        config: the mission, its models carrying their verified bytes.
        bundle: the verified bundle.
        directory: the private folder holding its code and data files.
    """

    config: MissionConfig
    bundle: VerifiedBundle
    directory: Path

    def close(self) -> None:
        """Remove the private folder now (it is removed at exit otherwise)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def open_bundle(path: Path, trusted: Sequence[TrustedKey], state_dir: Path | None,
                overrides: Sequence[str] = (), limits: Limits = DEFAULT_LIMITS) -> BundledMission:
    """Verify a bundle file, refuse a rollback, and load its mission from the verified bytes.

    Args:
        path: the bundle file, read once.
        trusted: the public keys accepted.
        state_dir: where the rollback floor is kept (None: no rollback check).
        overrides: ``--set`` items applied to the signed config after verification.
        limits: size bounds.

    Raises:
        BundleError: the bundle is refused, or the config names code or models
            that are not in it.
        ConfigError: the signed config does not validate (with the overrides).
    """
    verified = verify_bundle(read_bundle_file(path, limits), trusted, limits)
    if state_dir is not None:
        check_rollback(read_state(state_dir), verified.manifest.version, verified.bundle_id)
    remove_stale_folders(Path(tempfile.gettempdir()))
    directory = Path(tempfile.mkdtemp(
        prefix=f"{_FOLDER_PREFIX}{os.getpid()}-{verified.bundle_id[:12]}-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    directory = directory.resolve()
    config = _parse(verified, directory, overrides, path)
    models = []
    for i, model in enumerate(config.models):
        rel = _member(verified, directory, model.file, f"models[{i}].file")
        models.append((rel, replace(model, data=verified.files[rel])))
    for where, name in code_targets(config):
        _member(verified, directory, directory / name, where)
    in_memory = {rel for rel, _ in models} | {verified.manifest.config}
    for rel, data in verified.files.items():
        if rel not in in_memory:
            _write_private(directory, rel, data)
    config = replace(config, models=tuple(model for _, model in models))
    return BundledMission(config, verified, directory)


def remove_stale_folders(parent: Path) -> list[Path]:
    """Remove this user's private bundle folders in ``parent`` whose process is gone.

    Only folders named by :func:`open_bundle` (``flightai-bundle-pid<PID>-...``),
    owned by this user and not links are considered; a process id still in use
    (perhaps reused by another process) keeps its folder. Returns what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        pid = _folder_pid(entry.name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or \
                    entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _folder_pid(name: str) -> int | None:
    if not name.startswith(_FOLDER_PREFIX):
        return None
    pid = name[len(_FOLDER_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() and 0 < int(pid) < _PID_LIMIT else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _parse(verified: VerifiedBundle, directory: Path, overrides: Sequence[str],
           path: Path) -> MissionConfig:
    where = f"{path}:{verified.manifest.config}"
    try:
        data = tomllib.loads(verified.files[verified.manifest.config].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(where, "a UTF-8 text file", str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "valid TOML", str(exc)) from exc
    return parse_mission(apply_overrides(data, overrides), directory)


def _member(verified: VerifiedBundle, directory: Path, file: Path, where: str) -> str:
    """The bundle path of ``file``, refusing one outside the bundle."""
    try:
        rel = file.resolve().relative_to(directory).as_posix()
    except ValueError:
        rel = ""
    if rel not in verified.files:
        raise refuse(Refusal.NOT_IN_BUNDLE, f"{where}: {file} is not a file of the bundle")
    return rel


def _write_private(directory: Path, rel: str, data: bytes) -> None:
    target = directory.joinpath(*rel.split("/"))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
