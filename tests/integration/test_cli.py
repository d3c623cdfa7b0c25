"""The ``flightai`` command as a user runs it, in subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hil.ports import free_ports
from tests.conftest import EXAMPLE


def flightai(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightai", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_check_prints_table_signatures_hashes_and_providers() -> None:
    result = flightai("check", str(EXAMPLE / "mission.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "hyperperiod 500 ms = 50 frames of 10 ms" in out
    assert "signature: in [state float32[1, 6]] -> out [accel_cmd float32[1, 3]]" in out
    assert "OK\n" in out and "running CPUExecutionProvider" in out
    assert out.rstrip().endswith("OK: 5 tasks, 2 models, 7 signals")


def test_check_fails_on_a_tampered_model(example_dir: Path) -> None:
    model = example_dir / "models" / "camera_monitor.onnx"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))
    result = flightai("check", str(example_dir / "mission.toml"))
    assert result.returncode == 1
    assert "SHA-256 mismatch" in result.stdout and "FAILED: 1 problem(s)" in result.stdout


def test_bad_config_names_the_key_path(example_dir: Path) -> None:
    mission = example_dir / "mission.toml"
    mission.write_text(mission.read_text().replace("period_ms = 500", "period_ms = 505"))
    result = flightai("check", str(mission))
    assert result.returncode == 1
    assert ("tasks[4].period_ms: expected a multiple of runtime.minor_frame_ms (10), got 505"
            in result.stderr)


def test_run_fast_prints_a_summary_with_the_output_digest(mission: Path) -> None:
    digests = []
    for workers in ("1", "3"):
        result = flightai("run", str(mission), "--clock", "fast",
                          "--duration-ms", "1000", "--workers", workers, "--quiet")
        assert result.returncode == 0, result.stderr
        assert "after 100 frames" in result.stdout
        digests.append(re.search(r"output digest ([0-9a-f]{64})", result.stdout)[1])  # type: ignore[index]
    assert digests[0] == digests[1]


@contextmanager
def running_cli(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``flightai run`` in a subprocess, READY when yielded; killed if still alive after."""
    proc = subprocess.Popen([sys.executable, "-m", "flightai", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while "READY" not in lines[-1] and lines[-1] and len(lines) < 5:
            lines.append(proc.stdout.readline())
        assert "READY" in lines[-1], lines
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigterm_stops_cleanly_at_a_frame_boundary(mission: Path) -> None:
    with running_cli(str(mission), "--quiet") as proc:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frames = int(re.search(r"after (\d+) frames", out)[1])  # type: ignore[index]
    stopped_ms = re.search(r"mission time ([\d.]+ \w+)", out)[1]  # type: ignore[index]
    assert frames > 0 and "output digest" in out, stopped_ms


def test_ground_commands_without_the_extra_print_the_install_hint(monkeypatch, capsys) -> None:
    import importlib

    from flightai import cli

    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {'mcap'!r}", name="mcap")

    monkeypatch.setattr(importlib, "import_module", missing)
    for command in ("hil", "demo"):
        assert cli.main([command, "record"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"flightai {command} needs: pip install 'flightai[hil]' (missing: mcap)")


def test_no_command_prints_help() -> None:
    result = flightai()
    assert result.returncode == 2 and "check" in result.stdout


@pytest.fixture
def mission(example_dir: Path) -> Path:
    """The example with its bus moved to free loopback ports."""
    path = example_dir / "mission.toml"
    text = path.read_text()
    for default, port in zip((5550, 5551, 5552), free_ports(3), strict=True):
        text = text.replace(f"tcp://127.0.0.1:{default}", f"tcp://127.0.0.1:{port}")
    path.write_text(text)
    return path


def _commands_endpoint(mission: Path) -> tuple[str, str]:
    return "--commands", re.search(r'commands = "([^"]+)"', mission.read_text())[1]  # type: ignore[index]


def test_status_and_cmd_against_a_running_runtime(mission: Path) -> None:
    endpoint = _commands_endpoint(mission)
    with running_cli(str(mission), "--quiet", "--duration-ms", "60000") as proc:
        status = flightai("status", "--json", *endpoint)
        assert status.returncode == 0, status.stderr
        assert '"mode": "NOMINAL"' in status.stdout
        models = json.loads(status.stdout)["models"]
        assert models["guidance_mlp"]["providers"] == ["CPUExecutionProvider"]
        assert models["guidance_mlp"]["fallback"] is False
        human = flightai("status", *endpoint)
        assert human.stdout.startswith("mode NOMINAL") and "guidance" in human.stdout
        safe = flightai("cmd", "set_mode", "mode=SAFE", *endpoint)
        assert safe.returncode == 0 and safe.stdout.startswith("accepted"), safe.stdout
        again = flightai("cmd", "set_mode", "mode=SAFE", "--seq", "1", *endpoint)
        assert again.returncode == 1 and "rejected (seq 1): out_of_order" in again.stdout
        stop = flightai("cmd", "stop", *endpoint)
        assert stop.returncode == 0
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "mode SAFE" in out


def test_status_without_a_runtime_says_so() -> None:
    result = flightai("status", "--commands", "tcp://127.0.0.1:1", "--timeout-ms", "200")
    assert result.returncode == 1
    assert "no acknowledgement of 'status'" in result.stderr
