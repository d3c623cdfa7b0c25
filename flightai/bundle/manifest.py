"""The bundle manifest: what is signed. JSON, written canonically, parsed strictly.

The signature covers the exact manifest bytes; the bundle's id is the SHA-256 of
those bytes, so it names the mission config, every file's hash, the version and
the signing key at once, whatever the container's incidental bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flightai.bundle.archive import check_path
from flightai.bundle.refusal import Refusal, refuse

FORMAT = "flightai-bundle"
FORMAT_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = ("format", "format_version", "version", "mission", "config", "flightai_version",
         "created", "key_id", "files")
_MAX_VERSION = (1 << 63) - 1


@dataclass(frozen=True)
class FileEntry:
    """One payload file: its path relative to the mission folder, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The signed description of a bundle.

    Attributes:
        version: the bundle version, a monotonically increasing integer >= 1.
        mission: the mission name from its config.
        config: the path of the mission TOML among ``files``.
        flightai_version: the flightai that built it.
        created: creation facts (``utc``, ``host``, ``user``), informative only.
        key_id: the id of the key that signed it (the signature decides, not this).
        files: every payload file, sorted by path.
    """

    version: int
    mission: str
    config: str
    flightai_version: str
    created: Mapping[str, str]
    key_id: str
    files: tuple[FileEntry, ...]

    def encode(self) -> bytes:
        """The canonical bytes to sign: sorted keys, no spaces, UTF-8, a final newline."""
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
               "mission": self.mission, "config": self.config,
               "flightai_version": self.flightai_version, "created": dict(self.created),
               "key_id": self.key_id,
               "files": [{"path": f.path, "size": f.size, "sha256": f.sha256}
                         for f in self.files]}
        return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                + "\n").encode()

    def file(self, path: str) -> FileEntry | None:
        """The entry for ``path``, if listed."""
        return next((f for f in self.files if f.path == path), None)


def _bad(what: str) -> Exception:
    return refuse(Refusal.BAD_MANIFEST, what)


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str = "manifest") -> Any:
    value = doc.get(key)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad(f"{where}.{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise _bad(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def parse(data: bytes) -> Manifest:
    """Parse manifest bytes (already signature-checked) and check every field.

    Raises:
        BundleError: not UTF-8 JSON, a missing or unknown key, a wrong type, an
            unsafe or duplicate path, or a config that is not among the files.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict) or sorted(doc) != sorted(_KEYS):
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _bad(f"expected exactly the keys {', '.join(sorted(_KEYS))}, got {found}")
    if doc["format"] != FORMAT or _field(doc, "format_version", int) != FORMAT_VERSION:
        raise _bad(f"expected format {FORMAT!r} version {FORMAT_VERSION}, got "
                   f"{doc['format']!r} version {doc['format_version']!r}")
    version = _field(doc, "version", int)
    if not 1 <= version <= _MAX_VERSION:
        raise _bad(f"manifest.version: expected 1 .. 2^63-1, got {version}")
    created = _field(doc, "created", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in created.items()):
        raise _bad("manifest.created: expected a map of strings")
    key = _field(doc, "key_id", str)
    if not _HEX64.match(key):
        raise _bad(f"manifest.key_id: expected 64 hex digits, got {key!r}")
    files = []
    for i, item in enumerate(_field(doc, "files", list)):
        where = f"manifest.files[{i}]"
        if not isinstance(item, dict) or sorted(item) != ["path", "sha256", "size"]:
            raise _bad(f"{where}: expected exactly path, size, sha256")
        path = check_path(_field(item, "path", str, where))
        size = _field(item, "size", int, where)
        sha = _field(item, "sha256", str, where)
        if size < 0 or not _HEX64.match(sha):
            raise _bad(f"{where}: expected a size >= 0 and 64 lowercase hex digits")
        files.append(FileEntry(path, size, sha))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise refuse(Refusal.DUPLICATE, "the manifest lists a path twice")
    folders = {path.rsplit("/", i)[0] for path in paths for i in range(1, path.count("/") + 1)}
    clash = sorted(set(paths) & folders)
    if clash:
        inner = next(path for path in paths if path.startswith(clash[0] + "/"))
        raise refuse(Refusal.DUPLICATE, f"the manifest lists {clash[0]!r} as a file and as the "
                     f"folder of {inner!r}: they cannot both be written")
    manifest = Manifest(version=version, mission=_field(doc, "mission", str),
                        config=_field(doc, "config", str),
                        flightai_version=_field(doc, "flightai_version", str),
                        created=dict(created), key_id=key, files=tuple(files))
    if manifest.file(manifest.config) is None:
        raise _bad(f"manifest.config: {manifest.config!r} is not among the files")
    return manifest
