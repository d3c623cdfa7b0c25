"""``flightai bundle build``: pack a mission, everything it runs, a manifest and a signature.

A bundle holds the mission TOML, every model file, every ``file.py`` a task or
the source names, and the data files the config lists under ``[bundle] include``
(or ``--include``), each at its path relative to the mission's folder. A path
outside that folder, a symlink, or a task parameter naming a file that is there
but not packed is refused, so what runs on the board is exactly what was signed.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flightai import __version__
from flightai.bundle.archive import (
    FILES_PREFIX,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    check_path,
    write_archive,
)
from flightai.bundle.keys import key_id
from flightai.bundle.manifest import FileEntry, Manifest
from flightai.bundle.refusal import Refusal, refuse
from flightai.config import load_mission
from flightai.config.deployment import PATH_OPTIONS
from flightai.config.schema import MissionConfig


def _relative(path: Path, base_dir: Path, what: str) -> str:
    """``path`` relative to the mission folder, refusing anything outside it."""
    try:
        rel = path.resolve().relative_to(base_dir)
    except ValueError:
        raise refuse(Refusal.BUILD, f"{what}: {path} is outside the mission folder "
                     f"{base_dir}; a bundle holds only files under it") from None
    return check_path(rel.as_posix())


def code_targets(config: MissionConfig) -> Iterator[tuple[str, str]]:
    """(key path, ``file.py``) for every Python target given as a file."""
    for i, task in enumerate(config.tasks):
        for key in ("function", "factory"):
            target = getattr(task, key)
            if target is not None and target.rpartition(":")[0].endswith(".py"):
                yield f"tasks[{i}].{key}", target.rpartition(":")[0]
    if config.source is not None and config.source.factory.rpartition(":")[0].endswith(".py"):
        yield "source.factory", config.source.factory.rpartition(":")[0]


def mission_files(config: MissionConfig, mission_path: Path,
                  extra: Sequence[str] = ()) -> dict[str, Path]:
    """Every file the mission needs on a board, by its path relative to the mission folder.

    Raises:
        BundleError: a file outside the folder, a symlink, a missing include, a
            CURVE secret key given by a relative path, or a parameter naming a
            file that would not be packed.
    """
    base = config.base_dir
    files: dict[str, Path] = {_relative(mission_path, base, "the mission file"): mission_path}
    for i, model in enumerate(config.models):
        files[_relative(model.file, base, f"models[{i}].file")] = model.file
    for where, name in code_targets(config):
        files[_relative(base / name, base, where)] = base / name
    for i, item in enumerate((*config.bundle.include, *extra)):
        where = f"bundle.include[{i}]" if i < len(config.bundle.include) else f"--include {item}"
        for path in _walk(base / item, where):
            files[_relative(path, base, where)] = path
    curve = config.bus.curve if config.bus is not None else None
    if curve is not None and curve.server_secret_key_file.resolve().is_relative_to(base):
        raise refuse(Refusal.BUILD, "bus.curve.server_secret_key_file: the board's secret key "
                     "never goes into a bundle; give its absolute path outside the mission folder")
    for i, model in enumerate(config.models):
        for provider, options in model.provider_options:
            for key, value in options:
                if key in PATH_OPTIONS and Path(value).resolve().is_relative_to(base):
                    raise refuse(Refusal.BUILD, f"models[{i}].provider_options.{provider}.{key}: "
                                 "board state (engine caches) never goes into a bundle; give "
                                 "an absolute path on the board, outside the mission folder")
    for path in files.values():
        if path.is_symlink() or not path.is_file():
            raise refuse(Refusal.BUILD, f"{path}: not a regular file (symlinks are refused)")
    _check_params(config, set(files))
    return dict(sorted(files.items()))


def _walk(path: Path, where: str) -> Iterator[Path]:
    if path.is_symlink():
        raise refuse(Refusal.BUILD, f"{where}: {path} is a symlink; bundles hold regular files")
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.name != "__pycache__":
                yield from _walk(child, where)
    elif path.is_file():
        yield path
    else:
        raise refuse(Refusal.BUILD, f"{where}: {path} does not exist or is not a file")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")


def _check_params(config: MissionConfig, packed: set[str]) -> None:
    """Refuse a parameter naming a file beside the mission that is not packed."""
    params = [(f"tasks[{i}].params", t.params) for i, t in enumerate(config.tasks)]
    if config.source is not None:
        params.append(("source.params", config.source.params))
    for where, pairs in params:
        for key, value in pairs:
            for path, text in _strings(value, f"{where}.{key}"):
                candidate = config.base_dir / text
                if "\n" in text or not text or not _is_file(candidate):
                    continue
                rel = _relative(candidate, config.base_dir, path)
                if rel not in packed:
                    raise refuse(Refusal.BUILD, f"{path} names {text!r}, a file beside the "
                                 "mission that is not packed: add it to [bundle] include "
                                 "(or --include)")


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a string no file could be named (too long, NUL) is not."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _created() -> dict[str, str]:
    """When, where and by whom; ``SOURCE_DATE_EPOCH`` pins the time for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        when = (dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch
                else dt.datetime.now(dt.timezone.utc))
    except (ValueError, OverflowError, OSError):
        raise refuse(Refusal.BUILD, f"SOURCE_DATE_EPOCH: expected seconds since 1970 (an "
                     f"integer), got {epoch!r}") from None
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "host": socket.gethostname(),
            "user": user}


def build_bundle(mission_path: Path, signing_key: Ed25519PrivateKey, version: int,
                 include: Iterable[str] = ()) -> tuple[bytes, Manifest]:
    """The signed bundle bytes of a mission, and its manifest.

    Raises:
        ConfigError: the mission does not load.
        BundleError: a file cannot be packed, or a model's hash is not the configured one.
    """
    if version < 1:
        raise refuse(Refusal.BUILD, f"--version: expected an integer >= 1, got {version}")
    config = load_mission(mission_path)
    files = mission_files(config, mission_path.resolve(), tuple(include))
    contents = {rel: path.read_bytes() for rel, path in files.items()}
    for model in config.models:
        actual = hashlib.sha256(contents[_relative(model.file, config.base_dir, "")]).hexdigest()
        if actual != model.sha256:
            raise refuse(Refusal.BUILD, f"model {model.name!r} ({model.file}): SHA-256 {actual}, "
                         f"the config says {model.sha256}")
    manifest = Manifest(
        version=version, mission=config.name,
        config=_relative(mission_path, config.base_dir, "the mission file"),
        flightai_version=__version__, created=_created(),
        key_id=key_id(signing_key.public_key()),
        files=tuple(FileEntry(rel, len(data), hashlib.sha256(data).hexdigest())
                    for rel, data in contents.items()))
    manifest_bytes = manifest.encode()
    entries = [(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signing_key.sign(manifest_bytes))]
    entries += [(FILES_PREFIX + rel, data) for rel, data in contents.items()]
    return write_archive(entries), manifest
