"""Fault plans: strict TOML validation with key paths, per-fault random streams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flightai.config.loader import load_mission
from flightai.errors import ConfigError
from hil.faults.plan import Corruption, Kind, Layer, load_plan, parse_plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"

PLAN = """
seed = 9

[[faults]]
name = "alt-bias"
kind = "bias"
target = "altimeter.range"
start_ms = 1000
end_ms = 2000
params = { offset = 300.0 }

[[faults]]
name = "wire"
kind = "corrupt"
target = "*"
probability = 0.25
params = { modes = ["truncate", "bad_msgpack"] }

[[faults]]
name = "gnet"
kind = "overrun"
target = "guidance"
start_ms = 500
params = { overrun_kind = "not_started" }
"""


def _plan(text: str):
    return parse_plan(tomllib.loads(text), text)


def test_a_plan_reads_into_typed_faults_in_ns(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    plan = load_plan(path)
    assert plan.seed == 9 and plan.text == PLAN and plan.path == str(path)
    bias, wire, gnet = plan.faults
    assert (bias.kind, bias.layer, bias.start_ns, bias.end_ns) == (
        Kind.BIAS, Layer.SENSOR, 1_000_000_000, 2_000_000_000)
    assert bias.params == {"offset": (300.0,)}
    assert wire.layer is Layer.TRANSPORT and wire.end_ns is None and wire.probability == 0.25
    assert wire.params["modes"] == (Corruption.TRUNCATE, Corruption.BAD_MSGPACK)
    assert wire.matches("imu.dv") and wire.matches("camera.image")
    assert gnet.layer is Layer.MODEL and gnet.active(10**12) and not gnet.active(0)
    plan.check_against(load_mission(L2))


@pytest.mark.parametrize(("edit", "message"), [
    (("seed = 9", "seed = -1"), "seed: expected an integer >= 0, got -1 (int)"),
    (('kind = "bias"', 'kind = "bais"'), "faults[0].kind: expected one of dropout, stuck"),
    (("start_ms = 1000", "start_ms = 1000\nduration_ms = 5"),
     "faults[0].duration_ms: expected a key of faults[0] (end_ms, kind, name, params"),
    (("end_ms = 2000", "end_ms = 1000"), "faults[0].end_ms: expected an integer > start_ms"),
    (("offset = 300.0", "offst = 300.0"), "faults[0].params.offst: expected a key of"),
    (("params = { offset = 300.0 }", "params = {}"),
     "faults[0].params.offset: expected a value (required for bias), got nothing"),
    (("offset = 300.0", "offset = 'x'"), "faults[0].params.offset: expected a finite number"),
    (("probability = 0.25", "probability = 0"), "faults[1].probability: expected a number in"),
    (('"bad_msgpack"', '"bit_flip"'), "faults[1].params.modes: expected a non-empty array of"),
    (('name = "gnet"', 'name = "wire"'), "faults[2].name: expected a name unique in the plan"),
    (('target = "altimeter.range"', 'target = "*"'),
     "faults[0].target: expected a signal or task name ('*' is for transport faults only"),
])
def test_every_error_names_its_key_path(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _plan(PLAN.replace(*edit, 1))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(("edit", "message"), [
    (('target = "altimeter.range"', 'target = "altimeter"'),
     "faults[0].target: expected an input signal of ltd1-l2"),
    (('target = "altimeter.range"', 'target = "touchdown"'),
     "faults[0].target: expected a floating-point signal for bias, got 'touchdown' (uint8)"),
    (('target = "guidance"', 'target = "guidance_zemzev"'),
     "faults[2].target: expected a periodic task of ltd1-l2"),
    (("offset = 300.0", "offset = [1.0, 2.0]"),
     "faults[0].params.offset: expected one number or one per element of"),
])
def test_targets_are_checked_against_the_mission(edit: tuple[str, str], message: str) -> None:
    plan = _plan(PLAN.replace(*edit, 1))
    with pytest.raises(ConfigError) as caught:
        plan.check_against(load_mission(L2))
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_fault_draws_from_its_own_stream() -> None:
    plan = _plan(PLAN)
    alone = _plan(PLAN.split("[[faults]]")[0] + "[[faults]]" + PLAN.split("[[faults]]")[2])
    wire_with_others = plan.faults[1].rng().random(5)
    assert (alone.faults[0].name, alone.faults[0].rng().random(5).tolist()) == (
        "wire", wire_with_others.tolist())
    assert plan.faults[0].rng().random() != plan.faults[1].rng().random()
    reseeded = _plan(PLAN.replace("seed = 9", "seed = 10"))
    assert reseeded.faults[1].rng().random() != plan.faults[1].rng().random()


def test_an_unreadable_plan_is_named(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text("seed = \n")
    with pytest.raises(ConfigError, match=r"plan.toml: expected a readable TOML fault plan"):
        load_plan(path)


def test_the_demo_refuses_a_bad_plan_before_it_starts_the_runtime(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hil import demo

    path = tmp_path / "plan.toml"
    path.write_text(PLAN.replace('target = "guidance"', 'target = "guidanse"'))
    assert demo.main(["--faults", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "flightai demo: error: faults[2].target: expected a periodic task of ltd1-l2" in err
    assert not (tmp_path / "out" / "runtime.log").exists()
