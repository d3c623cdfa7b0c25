"""Why a bundle is refused: the codes carried by :class:`flightai.errors.BundleError`."""

from __future__ import annotations

import enum

from flightai.errors import BundleError


class Refusal(str, enum.Enum):
    """A refusal code; its value is the string in the error message."""

    TOO_LARGE = "too_large"
    NOT_AN_ARCHIVE = "not_an_archive"
    UNSAFE_PATH = "unsafe_path"
    NOT_A_FILE = "not_a_file"
    DUPLICATE = "duplicate"
    COMPRESSED = "compressed"
    NO_SIGNATURE = "no_signature"
    UNTRUSTED_KEY = "untrusted_key"
    BAD_SIGNATURE = "bad_signature"
    BAD_MANIFEST = "bad_manifest"
    UNLISTED_FILE = "unlisted_file"
    MISSING_FILE = "missing_file"
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    ROLLBACK = "rollback"
    NOT_IN_BUNDLE = "not_in_bundle"
    NOT_READY = "not_ready"
    BAD_KEY = "bad_key"
    BAD_STATE = "bad_state"
    BUILD = "build"


def refuse(reason: Refusal, detail: str) -> BundleError:
    """The error to raise for ``reason``, naming what was found."""
    return BundleError(reason.value, detail)
