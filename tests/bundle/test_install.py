"""A/B install: READY before activation, and a kill at any step leaves old or new active."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flightai.bundle.build import build_bundle
from flightai.bundle.install import STEPS, install, status_lines
from flightai.bundle.keys import TrustedKey, load_signing_key
from flightai.bundle.state import read_state, slot_file
from flightai.bundle.verify import verify_bundle
from flightai.errors import BundleError
from tests.bundle.conftest import BuildFn, Keys
from tests.conftest import EXAMPLE, ROOT
from tests.integration.bus_harness import wait_for

# Install in a child process, stopping (asleep) just before step argv[4] for the parent to kill.
_CHILD = """
import sys, time
from pathlib import Path
from flightai.bundle.install import install
from flightai.bundle.keys import load_trusted

def on_step(name):
    if name == sys.argv[4]:
        print("AT", name, flush=True)
        time.sleep(3600)

key = Path(sys.argv[3])
install(Path(sys.argv[1]), Path(sys.argv[2]), load_trusted([key]), [key], on_step=on_step)
print("DONE", flush=True)
"""


def _active_id(state_dir: Path, trusted: tuple[TrustedKey, ...]) -> str:
    """The active bundle's id, after checking that the slot file is whole and is that bundle."""
    state = read_state(state_dir)
    record = state.record(state.active)
    assert record is not None and state.active is not None
    verified = verify_bundle(slot_file(state_dir, state.active).read_bytes(), trusted)
    assert verified.bundle_id == record.bundle_id
    return record.bundle_id


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            return ""
    return proc.stdout.readline().strip()


def _probe_child(parent: int) -> bool:
    """Whether ``parent`` has a child process running ``flightai bundle probe`` (Linux /proc)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat_file.read_text().rpartition(")")[2].split()[1])
            cmdline = (stat_file.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):  # the process is gone: not ours
            continue
        if ppid == parent and b"probe" in cmdline:
            return True
    return False


@pytest.fixture
def versions(lite: Path, build: BuildFn) -> tuple[Path, Path]:
    """Two installable bundles of the same mission: v1, then v2 with other code bytes."""
    one = build(lite, 1)
    tasks = lite.parent / "tasks.py"
    tasks.write_text(tasks.read_text() + "\n# v2\n")
    return one, build(lite, 2)


def test_install_activates_after_ready_and_keeps_the_previous(
        versions: tuple[Path, Path], keys: Keys, trusted: tuple[TrustedKey, ...],
        tmp_path: Path, lite: Path, build: BuildFn) -> None:
    one, two = versions
    state_dir = tmp_path / "state"
    first = install(one, state_dir, trusted, [keys[1]])
    assert first.slot == "a" and not first.already_active
    again = install(one, state_dir, trusted, [keys[1]])
    assert again.already_active
    second = install(two, state_dir, trusted, [keys[1]])
    assert second.slot == "b"
    state = read_state(state_dir)
    assert state.active == "b" and state.previous == "a" and state.floor_version == 2
    assert _active_id(state_dir, trusted) == second.bundle.bundle_id
    lines = "\n".join(status_lines(state_dir))
    assert f"active   slot b: bundle {second.bundle.bundle_id} version 2" in lines
    assert f"previous slot a: bundle {first.bundle.bundle_id} version 1" in lines
    with pytest.raises(BundleError, match="version 1 is lower than version 2") as info:
        install(one, state_dir, trusted, [keys[1]])
    assert info.value.reason == "rollback"


def test_a_bundle_that_does_not_reach_ready_is_not_activated(
        versions: tuple[Path, Path], keys: Keys, trusted: tuple[TrustedKey, ...],
        tmp_path: Path, lite: Path, build: BuildFn) -> None:
    one, _ = versions
    state_dir = tmp_path / "state"
    good = install(one, state_dir, trusted, [keys[1]]).bundle.bundle_id
    tasks = lite.parent / "tasks.py"
    tasks.write_text(tasks.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    broken = build(lite, 3)
    with pytest.raises(BundleError, match=r"did not reach READY.*broken on purpose") as info:
        install(broken, state_dir, trusted, [keys[1]])
    assert info.value.reason == "not_ready"
    state = read_state(state_dir)
    assert state.active == "a" and state.floor_version == 1
    assert _active_id(state_dir, trusted) == good


def test_the_ready_probe_applies_the_board_profile_the_service_will_run_with(
        versions: tuple[Path, Path], keys: Keys, trusted: tuple[TrustedKey, ...],
        tmp_path: Path) -> None:
    one, _ = versions
    board = tmp_path / "gpu-board.toml"
    board.write_text('[board]\nname = "gpu-board"\n\n[models."*"]\n'
                     'providers = ["CUDAExecutionProvider"]\nallow_fallback = false\n')
    state_dir = tmp_path / "state"
    with pytest.raises(BundleError, match=r"did not reach READY.*CUDAExecutionProvider") as info:
        install(one, state_dir, trusted, [keys[1]], board=board)
    assert info.value.reason == "not_ready"
    assert read_state(state_dir).active is None
    dev_box = ROOT / "deploy" / "boards" / "x86-dev.toml"
    assert install(one, state_dir, trusted, [keys[1]], board=dev_box).slot == "a"


@pytest.fixture(scope="module")
def v1_installed(keys: Keys, trusted: tuple[TrustedKey, ...],
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(state folder with v1 active, v1 bundle, v2 bundle), made once: tests copy the folder."""
    folder = tmp_path_factory.mktemp("v1")
    shutil.copytree(EXAMPLE, folder / "lite", ignore=shutil.ignore_patterns("__pycache__"))
    mission = folder / "lite" / "mission.toml"
    paths = []
    for version in (1, 2):
        data, _ = build_bundle(mission, load_signing_key(keys[0]), version)
        (folder / f"v{version}.bundle").write_bytes(data)
        paths.append(folder / f"v{version}.bundle")
        (folder / "lite" / "tasks.py").write_text((folder / "lite" / "tasks.py").read_text()
                                                  + "\n# v2\n")
    install(paths[0], folder / "state", trusted, [keys[1]])
    return folder / "state", paths[0], paths[1]


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_an_install_killed_at_any_step_leaves_old_or_new_active(
        step: str, v1_installed: tuple[Path, Path, Path], keys: Keys,
        trusted: tuple[TrustedKey, ...], tmp_path: Path) -> None:
    template, one, two = v1_installed
    state_dir = tmp_path / "state"
    shutil.copytree(template, state_dir)
    old = verify_bundle(one.read_bytes(), trusted).bundle_id
    new = verify_bundle(two.read_bytes(), trusted).bundle_id
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(two), str(state_dir),
                             str(keys[1]), step], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = _read_line(proc, 120)
    finally:  # SIGKILL

        proc.kill()
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert line == f"AT {step}"
    active = _active_id(state_dir, trusted)
    assert active == (new if step == "done" else old)
    # The board recovers: the same install, run again, completes and keeps the old as previous.
    result = install(two, state_dir, trusted, [keys[1]])
    assert _active_id(state_dir, trusted) == new
    state = read_state(state_dir)
    assert state.previous is not None or result.already_active
    leftovers = [p for p in (state_dir / "slots").rglob("*.tmp")]
    assert all(p.parent.name != state.active for p in leftovers)


@pytest.mark.slow
def test_an_install_killed_while_its_probe_loads_the_bundle_leaves_the_old_active(
        v1_installed: tuple[Path, Path, Path], keys: Keys, trusted: tuple[TrustedKey, ...],
        tmp_path: Path) -> None:
    template, one, two = v1_installed
    state_dir = tmp_path / "state"
    shutil.copytree(template, state_dir)
    old = verify_bundle(one.read_bytes(), trusted).bundle_id
    proc = subprocess.Popen([sys.executable, "-m", "flightai", "bundle", "install", str(two),
                             "--trust", str(keys[1]), "--state-dir", str(state_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True)
    try:  # kill once the probe child runs (it then has the new slot whole, loading it)
        probing = wait_for(lambda: _probe_child(proc.pid), timeout_s=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the install and its probe child
        proc.wait(30)
    assert probing
    assert _active_id(state_dir, trusted) == old


def test_a_state_folder_that_cannot_be_made_is_a_clear_refusal(tmp_path: Path, lite: Path,
                                                               build: BuildFn,
                                                               trusted: tuple[TrustedKey, ...],
                                                               keys: Keys) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(BundleError, match="cannot use the state folder") as info:
        install(build(lite, 1), blocker / "state", trusted, [keys[1]])
    assert info.value.reason == "bad_state"
