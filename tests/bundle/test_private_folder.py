"""The private folder of a running bundle: left behind by a killed process, removed by the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flightai.bundle.keys import TrustedKey
from flightai.bundle.mission import open_bundle, remove_stale_folders
from tests.bundle.conftest import BuildFn, Keys

_OPEN_AND_WAIT = """
import sys, time
from pathlib import Path
from flightai.bundle.keys import load_trusted
from flightai.bundle.mission import open_bundle
mission = open_bundle(Path(sys.argv[1]), load_trusted([Path(sys.argv[2])]), None)
print(mission.directory, flush=True)
time.sleep(60)
"""


def test_a_killed_runtimes_folder_is_removed_when_the_next_bundle_opens(
        lite: Path, build: BuildFn, keys: Keys, trusted: tuple[TrustedKey, ...],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    bundle = build(lite, 1)
    child = subprocess.Popen([sys.executable, "-c", _OPEN_AND_WAIT, str(bundle), str(keys[1])],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": str(scratch)})
    try:
        assert child.stdout is not None
        left = Path(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert left.parent == scratch and (left / "tasks.py").is_file()  # SIGKILL: no atexit

    alive = scratch / f"flightai-bundle-pid{os.getppid()}-0123456789ab-kept"
    older = scratch / "flightai-bundle-0123456789ab-kept"  # the name before the pid was in it
    for folder in (alive, older):
        folder.mkdir()
    link = scratch / f"flightai-bundle-pid{child.pid}-link"
    link.symlink_to(alive)

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    mission = open_bundle(bundle, trusted, None)
    try:
        assert not left.exists()
        assert alive.is_dir() and older.is_dir() and link.is_symlink()
        assert mission.directory.name.startswith(f"flightai-bundle-pid{os.getpid()}-")
        assert remove_stale_folders(scratch) == []  # its own folder is kept
        assert mission.directory.is_dir()
    finally:
        mission.close()
