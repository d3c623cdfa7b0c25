"""A bundle checks and runs like its mission file, bit for bit, and says so in health."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flightai.client import Client
from flightai.errors import BusError
from hil.ports import free_ports
from tests.bundle.conftest import Keys
from tests.conftest import EXAMPLE, ROOT


def flightai(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightai", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _bus(ports: list[int]) -> list[str]:
    sets = []
    for key, port in zip(("sensors", "outputs", "commands"), ports, strict=True):
        sets += ["--set", f'bus.{key}="tcp://127.0.0.1:{port}"']
    return sets


def _digest(out: str) -> str:
    match = re.search(r"output digest ([0-9a-f]{64}) \((\d+) publications\)", out)
    assert match, out
    return match.group(1)


MISSIONS = [
    pytest.param(EXAMPLE / "mission.toml", [], "OK: 5 tasks, 2 models, 7 signals", 2, 4,
                 id="ltd1-lite"),
    pytest.param(ROOT / "models" / "ltd1" / "l2.toml", ["--include", "maps/ltd1-map.npz"],
                 "OK: 6 tasks, 2 models, 13 signals", 1, 6, id="ltd1-l2"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("mission", "include", "checked_ok", "workers", "files"), MISSIONS)
def test_a_bundle_checks_and_runs_with_the_plain_missions_output_digest(
        mission: Path, include: list[str], checked_ok: str, workers: int, files: int,
        keys: Keys, tmp_path: Path) -> None:
    bundle = tmp_path / "mission.bundle"
    built = flightai("bundle", "build", str(mission), "--key", str(keys[0]), "--version", "4",
                     *include, "-o", str(bundle))
    assert built.returncode == 0, built.stderr
    trust = ["--trust", str(keys[1]), "--state-dir", str(tmp_path / "state")]
    checked = flightai("check", "--bundle", str(bundle), *trust)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{files} files verified" in checked.stdout
    assert checked.stdout.rstrip().endswith(checked_ok)
    run = ["--clock", "fast", "--duration-ms", "3000", "--quiet"]
    plain = flightai("run", str(mission), *run, *_bus(free_ports(3)))
    bundled = flightai("run", "--bundle", str(bundle), *trust, *run, *_bus(free_ports(3)))
    assert plain.returncode == 0 and bundled.returncode == 0, plain.stderr + bundled.stderr
    assert _digest(bundled.stdout) == _digest(plain.stdout)
    verified = flightai("bundle", "verify", str(bundle), *trust)
    bundle_id = re.search(r"id ([0-9a-f]{64})", verified.stdout)
    assert bundle_id, verified.stdout
    assert (f"READY; running on the fast clock with {workers} workers from bundle "
            f"{bundle_id.group(1)} version 4 for 3.000 s") in bundled.stdout


@pytest.mark.slow
def test_health_names_the_active_bundle(keys: Keys, tmp_path: Path) -> None:
    bundle, state = tmp_path / "lite.bundle", tmp_path / "state"
    assert flightai("bundle", "build", str(EXAMPLE / "mission.toml"), "--key", str(keys[0]),
                    "--version", "2", "-o", str(bundle)).returncode == 0
    assert flightai("bundle", "install", str(bundle), "--trust", str(keys[1]),
                    "--state-dir", str(state)).returncode == 0
    ports = free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "flightai", "run", "--active", "--trust",
                             str(keys[1]), "--state-dir", str(state), "--duration-ms", "60000",
                             "--quiet", *_bus(ports)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        status: dict[str, object] = {}
        deadline = time.monotonic() + 60
        with Client(commands=f"tcp://127.0.0.1:{ports[2]}", timeout_ms=500,
                    first_command_seq=time.time_ns() // 1000) as client:
            while "bundle" not in status and time.monotonic() < deadline:
                try:
                    status = client.status()
                except BusError:  # not up yet: the poll bound decides when to give up
                    time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    installed = flightai("bundle", "status", "--state-dir", str(state)).stdout
    bundle_id = re.search(r"active   slot a: bundle ([0-9a-f]{64}) version 2", installed)
    assert bundle_id, installed
    assert status.get("bundle") == {"id": bundle_id.group(1), "version": 2,
                                    "mission": "ltd1-lite"}
