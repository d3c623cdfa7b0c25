"""Ed25519 signing keys for bundles: generate, load, sign, verify (PyCA ``cryptography``).

Files are PEM: the secret key PKCS#8 unencrypted (mode 0600, never overwritten),
the public key SubjectPublicKeyInfo, so ``openssl pkey`` reads both. A key's id
is the SHA-256 of its raw 32-byte public key, in hex.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flightai.bundle.refusal import Refusal, refuse

SIGNATURE_BYTES = 64
_MAX_KEY_FILE_BYTES = 16 * 1024


def key_id(public: Ed25519PublicKey) -> str:
    """The SHA-256 of the raw public key, 64 hex digits."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class TrustedKey:
    """A public key a board accepts bundles from, and the file it came from."""

    key: Ed25519PublicKey
    id: str
    source: str

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``message``."""
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (secret, 0600) and ``NAME.pub`` in ``directory``; never overwrite.

    Raises:
        BundleError: a file of that name exists already.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise refuse(Refusal.BAD_KEY, f"cannot create {directory}: {exc.strerror or exc}") from exc
    secret_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    secret = Ed25519PrivateKey.generate()
    secret_pem = secret.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    public_pem = secret.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((secret_path, secret_pem, 0o600), (public_path, public_pem, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError as exc:
            raise refuse(Refusal.BAD_KEY, f"{path} exists already; not overwritten") from exc
        except OSError as exc:
            raise refuse(Refusal.BAD_KEY, f"cannot write {path}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, mode)  # the umask may have removed bits; never added any
    return secret_path, public_path


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise refuse(Refusal.BAD_KEY, f"cannot read {path}: {exc.strerror or exc}") from exc


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 secret key.

    Raises:
        BundleError: unreadable, not PEM, encrypted, or not Ed25519.
    """
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise refuse(Refusal.BAD_KEY, f"{path}: not an unencrypted PEM secret key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise refuse(Refusal.BAD_KEY, f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> TrustedKey:
    """Read a PEM Ed25519 public key.

    Raises:
        BundleError: unreadable, not PEM, or not Ed25519.
    """
    try:
        key = serialization.load_pem_public_key(_read(path))
    except (ValueError, TypeError) as exc:
        raise refuse(Refusal.BAD_KEY, f"{path}: not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise refuse(Refusal.BAD_KEY, f"{path}: expected an Ed25519 key, got {type(key).__name__}")
    return TrustedKey(key, key_id(key), str(path))


def load_trusted(paths: Iterable[Path]) -> tuple[TrustedKey, ...]:
    """The keys in the given ``.pub`` files, or in every ``*.pub`` of a given folder.

    Raises:
        BundleError: no key at all, or a file that is not an Ed25519 public key.
    """
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.pub")) if path.is_dir() else [path])
    keys = tuple(load_public_key(f) for f in files)
    if not keys:
        raise refuse(Refusal.BAD_KEY, "no trusted public key given (--trust KEY.pub)")
    return keys


def describe_ids(keys: Sequence[TrustedKey]) -> str:
    """Short ids of ``keys`` for messages."""
    return ", ".join(k.id[:16] for k in keys)
