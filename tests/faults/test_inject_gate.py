"""The runtime's bench-only injection file: refused unless armed, strictly checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flightai.config.loader import load_mission
from flightai.errors import ConfigError
from flightai.inject import ENV_GATE, Injections, load_injections, parse_injections
from flightai.sched.executive import NanOutput, Overrun, OverrunKind

L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"
JOBS = Injections((Overrun("trn", 510_000_000, OverrunKind.NOT_STARTED),),
                  (NanOutput("guidance", 30_000_000),))


@pytest.fixture(scope="module")
def config():
    return load_mission(L2)


def test_the_file_round_trips_when_armed(config, tmp_path: Path) -> None:
    path = tmp_path / "injections.json"
    path.write_text(json.dumps(JOBS.to_json()))
    assert load_injections(path, config, {ENV_GATE: "1"}) == JOBS


@pytest.mark.parametrize("environ", [{}, {ENV_GATE: "0"}, {ENV_GATE: "yes"}])
def test_without_the_bench_variable_it_is_refused(config, tmp_path: Path,
                                                  environ: dict[str, str]) -> None:
    path = tmp_path / "injections.json"
    path.write_text(json.dumps(JOBS.to_json()))
    with pytest.raises(ConfigError, match=f"--inject-faults: expected a bench run with "
                                          f"{ENV_GATE}=1"):
        load_injections(path, config, environ)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(extra=1), "<injections>: expected an object with keys"),
    (lambda d: d.update(version=2), "<injections>.version: expected 1, got 2"),
    (lambda d: d["overruns"][0].update(task="guidance_zemzev"),
     "<injections>.overruns[0].task: expected a periodic task of the mission"),
    (lambda d: d["overruns"][0].update(kind="slow"), "<injections>.overruns[0].kind: expected"),
    (lambda d: d["overruns"][0].update(kind=[]), "<injections>.overruns[0].kind: expected"),
    (lambda d: d["nan_outputs"][0].update(task=["guidance"]),
     "<injections>.nan_outputs[0].task: expected a periodic task of the mission"),
    (lambda d: d["nan_outputs"][0].update(t_release_ns=1.5),
     "<injections>.nan_outputs[0].t_release_ns: expected an integer >= 0 (ns), got 1.5"),
])
def test_bad_entries_are_named(config, change, message: str) -> None:
    data = JOBS.to_json()
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_injections(data, config)
    assert str(caught.value).startswith(message), str(caught.value)


def test_flightai_run_refuses_the_option_unless_armed(tmp_path: Path) -> None:
    path = tmp_path / "injections.json"
    path.write_text(json.dumps(JOBS.to_json()))
    env = {k: v for k, v in os.environ.items() if k != ENV_GATE}
    result = subprocess.run([sys.executable, "-m", "flightai", "run", str(L2), "--clock", "fast",
                             "--duration-ms", "10", "--inject-faults", str(path)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert f"flightai: error: --inject-faults: expected a bench run with {ENV_GATE}=1" \
        in result.stderr
