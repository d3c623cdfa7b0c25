"""The bundle container: an uncompressed zip, read as hostile input.

Only regular files stored without compression are accepted, so an entry's
size in the archive is its size on extraction and the archive's own size bounds
everything read (no decompression bombs). Names are relative POSIX paths
without ``..``, ``.``, empty parts, backslashes or control characters. Nothing is
ever extracted by the zip library: entries are read into memory and checked, each
only when the verifier asks for it (the manifest and its signature first).
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from flightai.bundle.refusal import Refusal, refuse

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
FILES_PREFIX = "files/"
MAX_PATH_CHARS = 255
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: builds are byte-reproducible
_REGULAR_0644 = (stat.S_IFREG | 0o644) << 16

#: Everything the zip module raises on a malformed archive.
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, OSError,
    ValueError, OverflowError, NotImplementedError, KeyError, IndexError, UnicodeDecodeError,
)


@dataclass(frozen=True)
class Limits:
    """Bounds on what a bundle may hold (bytes, entries)."""

    max_bundle_bytes: int = 1 << 30
    max_entries: int = 4096
    max_manifest_bytes: int = 1 << 20


DEFAULT_LIMITS = Limits()


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else refuse it.

    Raises:
        BundleError: absolute, ``..``/``.``/empty parts, backslash, drive or control chars.
    """
    bad = (not path or len(path) > MAX_PATH_CHARS or path.startswith("/") or "\\" in path
           or ":" in path.split("/")[0] or any(ord(c) < 32 or ord(c) == 127 for c in path)
           or any(part in ("", ".", "..") for part in path.split("/")))
    if bad:
        raise refuse(Refusal.UNSAFE_PATH, f"{path!r}: expected a relative path without "
                     "'..', '.', empty parts, backslashes, drive letters or control characters")
    return path


def write_archive(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """An uncompressed zip of ``(name, data)`` entries, in the given order, reproducibly."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(check_path(name), date_time=_FIXED_TIME)
            info.external_attr = _REGULAR_0644
            info.create_system = 3  # unix, so external_attr holds st_mode
            archive.writestr(info, data)
    return out.getvalue()


class StoredArchive:
    """An archive held in memory: its entry list checked at once, each entry read on demand.

    Opening checks the count, names, types and declared sizes of every entry; an
    entry's bytes (and their CRC-32) are read only when asked for, so a verifier can
    read the manifest and its signature, check them, and only then touch the rest.
    Use it as a context manager.

    Raises:
        BundleError: too large, not a zip, an unsafe or duplicate name, or something
            other than a regular uncompressed file.
    """

    def __init__(self, data: bytes, limits: Limits) -> None:
        if len(data) > limits.max_bundle_bytes:
            raise refuse(Refusal.TOO_LARGE, f"{len(data)} bytes, above the limit of "
                         f"{limits.max_bundle_bytes}")
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
        except ZIP_ERRORS as exc:
            raise refuse(Refusal.NOT_AN_ARCHIVE, f"not a readable zip: {exc}") from exc
        try:
            self._infos = _checked_infos(self._zip, len(data), limits)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> StoredArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def names(self) -> list[str]:
        """Every entry's name, in archive order."""
        return list(self._infos)

    def read(self, name: str) -> bytes | None:
        """The bytes of entry ``name`` (None if absent), after its CRC-32 and size check.

        Raises:
            BundleError: the entry is corrupt (``not_an_archive``, ``size_mismatch``).
        """
        info = self._infos.get(name)
        if info is None:
            return None
        try:
            content = self._zip.read(info)  # checks the CRC-32 and the local header's name
        except ZIP_ERRORS as exc:
            raise refuse(Refusal.NOT_AN_ARCHIVE, f"{name!r}: {exc}") from exc
        if len(content) != info.file_size:
            raise refuse(Refusal.SIZE_MISMATCH, f"{name!r}: read {len(content)} bytes, the "
                         f"archive says {info.file_size}")
        return content


def _checked_infos(archive: zipfile.ZipFile, size: int, limits: Limits
                   ) -> dict[str, zipfile.ZipInfo]:
    """An open archive's entries by name, checked as :class:`StoredArchive` says."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise refuse(Refusal.TOO_LARGE, f"{len(infos)} entries, above the limit of "
                     f"{limits.max_entries}")
    total = 0
    seen: set[str] = set()
    for info in infos:
        _check_entry(info, seen)
        total += info.file_size
    if total > min(limits.max_bundle_bytes, size):
        # Stored entries cannot hold more than the archive: more means overlapping entries.
        raise refuse(Refusal.TOO_LARGE, f"entries declare {total} bytes in an archive of "
                     f"{size} (limit {limits.max_bundle_bytes})")
    return {info.filename: info for info in infos}


def _check_entry(info: zipfile.ZipInfo, seen: set[str]) -> None:
    name = info.filename
    if name.endswith("/") or info.is_dir():
        raise refuse(Refusal.NOT_A_FILE, f"{name!r} is a directory entry")
    check_path(name)
    if name in seen:
        raise refuse(Refusal.DUPLICATE, f"{name!r} appears twice in the archive")
    seen.add(name)
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode and not stat.S_ISREG(mode):
        raise refuse(Refusal.NOT_A_FILE, f"{name!r} is not a regular file (mode {mode:o}): "
                     "links and device files are refused")
    if info.flag_bits & 0x1:
        raise refuse(Refusal.NOT_A_FILE, f"{name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise refuse(Refusal.COMPRESSED, f"{name!r} is compressed (method "
                     f"{info.compress_type}); bundles store entries uncompressed")
