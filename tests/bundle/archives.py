"""Reading and rewriting bundle archives in tests (hostile inputs are built from these)."""

from __future__ import annotations

import io
import zipfile

from flightai.bundle.archive import write_archive


def entries(bundle: bytes) -> list[tuple[str, bytes]]:
    """The (name, bytes) entries of a bundle, in archive order (no checks: test input)."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def rebuild(bundle: bytes, replace: dict[str, bytes]) -> bytes:
    """The same archive with some entries' bytes replaced (valid zip, fresh CRCs)."""
    return write_archive([(name, replace.get(name, data)) for name, data in entries(bundle)])


def member(bundle: bytes, name: str) -> bytes:
    return dict(entries(bundle))[name]

