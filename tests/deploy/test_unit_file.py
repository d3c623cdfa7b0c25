"""deploy/flightai.service: a notify unit with a watchdog whose ExecStart our CLI accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from flightai.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "flightai.service"


def _entries(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> values (systemd allows repeated keys), continuations joined."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_the_unit_is_a_notify_service_with_a_watchdog_and_one_blas_thread() -> None:
    unit = _entries(UNIT.read_text())
    service = {k.split(".", 1)[1]: v for k, v in unit.items() if k.startswith("Service.")}
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"] and service["WatchdogSec"] == ["2s"]
    assert "OPENBLAS_NUM_THREADS=1" in service["Environment"]
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].endswith("/flightai") and argv[1:3] == ["run", "--active"]
    args = _parser().parse_args(argv[1:])  # every option exists in this flightai
    assert args.active and args.board == Path("/etc/flightai/board.toml")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's binary to exist: point it at one that does.
    text = UNIT.read_text().replace("/opt/flightai/venv/bin/flightai", "/bin/true")
    copy = tmp_path / "flightai.service"
    copy.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60, check=False, env={"SYSTEMD_LOG_LEVEL": "warning"})
    assert done.returncode == 0 and "flightai.service" not in done.stderr, done.stderr
