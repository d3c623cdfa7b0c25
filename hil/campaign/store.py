"""The results store: one JSON file per finished case, written atomically, so a run resumes.

Layout of a campaign folder::

    campaign.json        the manifest (CampaignSpec.manifest); a folder holds one campaign
    cases/<key>.json     one finished case (hil.campaign.worker.fly_case)
    report.json          the aggregate, rewritten at the end of each run
    report.html          the same for people
    timing.json          wall times of the last run (kept out of report.json)

A case file is written to a temporary name in the same folder, flushed and
fsynced, renamed over its final name and the folder fsynced: after a crash a
case is either whole or absent, never torn. A re-run lists ``cases/`` and
submits only the missing keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MANIFEST = "campaign.json"
CASES = "cases"


class StoreMismatch(ValueError):
    """The folder already holds a different campaign."""

    def __init__(self, folder: Path, field: str, stored: Any, wanted: Any) -> None:
        super().__init__(f"{folder}: holds another campaign ({field}: stored {stored!r}, "
                         f"this run {wanted!r}); use another --out folder")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_manifest(path: Path) -> dict[str, Any]:
    """A stored manifest.

    Raises:
        StoreMismatch: the file is not a JSON object (not a campaign's manifest).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON
        raise StoreMismatch(path.parent, MANIFEST, f"unreadable ({exc})",
                            "a campaign manifest") from None
    if not isinstance(data, dict):
        raise StoreMismatch(path.parent, MANIFEST, data, "a campaign manifest")
    return data


class ResultsStore:
    """A campaign folder (created if absent).

    Args:
        folder: the folder.
        manifest: the campaign's manifest; a folder holding another campaign is refused.
            The case count may differ (a campaign grows or is cut short on resume).

    Raises:
        StoreMismatch: the folder's manifest names another campaign.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.cases_dir = folder / CASES
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST
        if path.exists():
            stored = _read_manifest(path)
            for key in ("mission_sha256", "overrides", "entropy", "stress_sun", "nominal",
                        "base_dir", "campaign_id"):
                if stored.get(key) != manifest.get(key):
                    raise StoreMismatch(folder, key, stored.get(key), manifest.get(key))
        write_atomic(path, json.dumps(manifest, indent=1) + "\n")
        for stale in self.cases_dir.glob(".*.tmp"):  # a write torn by a crash
            stale.unlink()

    def done(self) -> set[str]:
        """Keys of the cases already stored."""
        return {p.stem for p in self.cases_dir.glob("*.json")}

    def put(self, record: dict[str, Any]) -> None:
        """Store one finished case."""
        write_atomic(self.cases_dir / f"{record['key']}.json", json.dumps(record, indent=1) + "\n")

    def get(self, key: str) -> dict[str, Any]:
        """One stored case."""
        data: dict[str, Any] = json.loads((self.cases_dir / f"{key}.json").read_text("utf-8"))
        return data

    def records(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        """The stored cases of ``keys``, in that order."""
        return (self.get(key) for key in keys)
