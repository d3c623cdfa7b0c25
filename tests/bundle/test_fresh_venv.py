"""``pip install flightai`` alone (no extras), in a fresh virtual environment, runs bundles.

The environment is made with ``venv`` (no system site packages, so none of the
extras installed here can leak in) and gets the project from a copy of its
source tree with ``pip install``, dependencies from the index or pip's cache.
About 30 s on the loaded 2-core dev machine with a warm pip cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flightai.cli import HIL_HINT
from hil.ports import free_ports
from tests.bundle.conftest import Keys
from tests.conftest import EXAMPLE, ROOT

# No PYTHONPATH, no VIRTUAL_ENV: only what pip needs to reach its index and cache.
_ENV = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.lower() in (
            "http_proxy", "https_proxy", "no_proxy", "ssl_cert_file", "xdg_cache_home")}}


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=_ENV)


@pytest.mark.slow
def test_a_fresh_venv_without_extras_verifies_checks_and_runs_a_bundle(
        keys: Keys, tmp_path: Path) -> None:
    wall_start = time.monotonic()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("flightai", "hil"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python, cli = venv / "bin" / "python", venv / "bin" / "flightai"
    installed = _run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", src,
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    for extra in ("mcap", "foxglove", "dask", "matplotlib", "rich", "pytest"):
        missing = _run(python, "-c", f"import {extra}", cwd=tmp_path)
        assert missing.returncode != 0, f"{extra} is importable in the fresh venv"
    where = _run(python, "-c", "import flightai; print(flightai.__file__)", cwd=tmp_path)
    assert str(venv) in where.stdout, where.stdout + where.stderr

    bundle = tmp_path / "lite.bundle"
    built = _run(cli, "bundle", "build", EXAMPLE / "mission.toml", "--key", keys[0],
                 "--version", "1", "-o", bundle, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    trust = ["--trust", str(keys[1]), "--state-dir", str(tmp_path / "state")]
    verified = _run(cli, "bundle", "verify", bundle, *trust, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: bundle "), verified.stderr
    checked = _run(cli, "check", "--bundle", bundle, *trust, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.rstrip().endswith("OK: 5 tasks, 2 models, 7 signals")
    sets = [f'--set=bus.{k}="tcp://127.0.0.1:{p}"'
            for k, p in zip(("sensors", "outputs", "commands"), free_ports(3), strict=True)]
    ran = _run(cli, "run", "--bundle", bundle, *trust, "--clock", "fast", "--duration-ms",
               "2000", "--quiet", *sets, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(r"output digest [0-9a-f]{64} \(\d+ publications\)", ran.stdout), ran.stdout

    hil = _run(cli, "hil", "replay", "x.mcap", cwd=tmp_path)
    assert hil.returncode == 2
    hint = HIL_HINT.split("{missing}")[0].format(command="hil")
    assert hil.stderr.startswith(hint), hil.stderr
    print(f"fresh venv: made, installed and ran in {time.monotonic() - wall_start:.1f} s wall")
