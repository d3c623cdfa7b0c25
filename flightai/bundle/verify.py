"""Verify a bundle held in memory: signature first, then every file against the manifest.

Only the archive's entry list, the manifest and its signature are read before the
signature over the manifest checks out against a trusted key; a payload entry is
read (and its CRC-32 checked) only after that, and only once the archive is known
to hold exactly the listed files. Nothing is handed on before every file's size
and SHA-256 match the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightai.bundle.archive import (
    DEFAULT_LIMITS,
    FILES_PREFIX,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Limits,
    StoredArchive,
)
from flightai.bundle.keys import SIGNATURE_BYTES, TrustedKey, describe_ids
from flightai.bundle.manifest import Manifest, parse
from flightai.bundle.refusal import Refusal, refuse


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature and every file have been checked.

    Attributes:
        manifest: the parsed manifest.
        bundle_id: SHA-256 of the exact manifest bytes (the bundle's identity).
        signer: the trusted key whose signature verified.
        files: each payload path (relative to the mission folder) and its verified bytes.
    """

    manifest: Manifest
    bundle_id: str
    signer: TrustedKey
    files: Mapping[str, bytes]

    def describe(self) -> str:
        """One line for operators: id, version, mission, signer and file count."""
        return (f"bundle {self.bundle_id[:16]} version {self.manifest.version} of mission "
                f"{self.manifest.mission!r}, signed by key {self.signer.id[:16]}, "
                f"{len(self.files)} files verified")


def read_bundle_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a bundle file once, refusing it past ``limits.max_bundle_bytes``.

    Raises:
        BundleError: unreadable or too large.
    """
    try:
        with path.open("rb") as f:
            data = f.read(limits.max_bundle_bytes + 1)
    except OSError as exc:
        raise refuse(Refusal.NOT_AN_ARCHIVE, f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limits.max_bundle_bytes:
        raise refuse(Refusal.TOO_LARGE, f"{path} is larger than {limits.max_bundle_bytes} bytes")
    return data


def bundle_id(manifest_bytes: bytes) -> str:
    """The id of a bundle: the SHA-256 of its exact manifest bytes."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def verify_bundle(data: bytes, trusted: Sequence[TrustedKey],
                  limits: Limits = DEFAULT_LIMITS) -> VerifiedBundle:
    """Check a bundle's signature, then its files, all from ``data``.

    Raises:
        BundleError: with the :class:`Refusal` code and the file or key involved.
    """
    with StoredArchive(data, limits) as archive:
        manifest_bytes = archive.read(MANIFEST_NAME)
        signature = archive.read(SIGNATURE_NAME)
        if manifest_bytes is None or signature is None:
            raise refuse(Refusal.NO_SIGNATURE, f"no {MANIFEST_NAME} and {SIGNATURE_NAME} pair")
        if len(manifest_bytes) > limits.max_manifest_bytes:
            raise refuse(Refusal.TOO_LARGE, f"{MANIFEST_NAME} is {len(manifest_bytes)} bytes")
        signer = next((k for k in trusted if len(signature) == SIGNATURE_BYTES
                       and k.verifies(signature, manifest_bytes)), None)
        if signer is None:
            claimed = _claimed_key(manifest_bytes)
            if claimed is not None and claimed not in {k.id for k in trusted}:
                raise refuse(Refusal.UNTRUSTED_KEY, f"the manifest says key {claimed[:16]}, "
                             f"which is not trusted here (trusted: {describe_ids(trusted)})")
            raise refuse(Refusal.BAD_SIGNATURE, "the signature does not verify against any "
                         f"trusted key ({describe_ids(trusted)}) over the manifest as found")
        manifest = parse(manifest_bytes)
        if manifest.key_id != signer.id:
            raise refuse(Refusal.BAD_MANIFEST, f"signed by key {signer.id[:16]} but the "
                         f"manifest names key {manifest.key_id[:16]}")
        files = _check_files(manifest, archive)
    return VerifiedBundle(manifest, bundle_id(manifest_bytes), signer, files)


def _claimed_key(manifest_bytes: bytes) -> str | None:
    """The key id an unverified manifest claims, for the error message only."""
    try:
        doc = json.loads(manifest_bytes)
    except (ValueError, RecursionError):
        return None
    key = doc.get("key_id") if isinstance(doc, dict) else None
    return key if isinstance(key, str) else None


def _check_files(manifest: Manifest, archive: StoredArchive) -> dict[str, bytes]:
    """The payload, read only once the archive holds exactly the signed manifest's files."""
    names = archive.names()
    for name in names:
        if name not in (MANIFEST_NAME, SIGNATURE_NAME) and not name.startswith(FILES_PREFIX):
            raise refuse(Refusal.UNLISTED_FILE, f"{name!r} is not a payload file")
    payload = {name[len(FILES_PREFIX):] for name in names if name.startswith(FILES_PREFIX)}
    listed = {f.path for f in manifest.files}
    unlisted = sorted(payload - listed)
    if unlisted:
        raise refuse(Refusal.UNLISTED_FILE, f"{unlisted[0]!r} is in the archive, not in the "
                     "signed manifest")
    files: dict[str, bytes] = {}
    for entry in manifest.files:
        content = archive.read(FILES_PREFIX + entry.path) if entry.path in payload else None
        if content is None:
            raise refuse(Refusal.MISSING_FILE, f"{entry.path!r} is in the signed manifest, "
                         "not in the archive")
        if len(content) != entry.size:
            raise refuse(Refusal.SIZE_MISMATCH, f"{entry.path!r}: {len(content)} bytes, the "
                         f"manifest says {entry.size}")
        actual = hashlib.sha256(content).hexdigest()
        if actual != entry.sha256:
            raise refuse(Refusal.HASH_MISMATCH, f"{entry.path!r}: SHA-256 {actual}, the "
                         f"manifest says {entry.sha256}")
        files[entry.path] = content
    return files
