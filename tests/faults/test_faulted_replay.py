"""A faulted demo flight over the real bus, recorded, replays bit for bit with its faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil import demo
from hil.faults.flight import fly_faulted
from hil.faults.plan import load_plan
from hil.faults.record import recorded_injections, recorded_log, recorded_plan
from hil.ltd1.dispersions import draw_case
from hil.record import Recording
from hil.replay import compare, recorded_publications, replay
from hil.replay.player import BusTarget, recorded_config

pytestmark = pytest.mark.slow

PLAN = Path(__file__).resolve().parent / "ltd1_faults.toml"
L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"
SEED = 1


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The L2 demo flown with every fault kind and recorded: its output folder."""
    folder = tmp_path_factory.mktemp("faulted")
    demo.main(["--config", "l2", "--seed", str(SEED), "--faults", str(PLAN),
               "--record", str(folder / "run.mcap"), "--out", str(folder)])
    return folder


@pytest.fixture(scope="module")
def recording(flight: Path) -> Recording:
    return Recording(flight / "run.mcap")


def test_the_recording_holds_the_plan_and_every_applied_fault(
        flight: Path, recording: Recording) -> None:
    plan = recorded_plan(recording)
    assert plan is not None and plan.text == PLAN.read_text() and plan.seed == 5
    applied = json.loads((flight / "faults.json").read_text())["applied"]
    log = recorded_log(recording)
    assert [(a.t_ns, a.fault, a.kind, a.target, a.detail) for a in log] == [
        (a["t_ns"], a["fault"], a["kind"], a["target"], a["detail"]) for a in applied]
    assert {a.kind for a in log} == {f.kind.value for f in plan.faults}
    injections = recorded_injections(recording, recorded_config(recording))
    assert len(injections.nan_outputs) == 5 and injections.overruns


@pytest.mark.parametrize("workers", [1, 4])
def test_fast_replay_reproduces_the_faulted_outputs_bit_for_bit(
        flight: Path, recording: Recording, workers: int) -> None:
    result = replay(recording, workers=workers)
    comparison = compare(recorded_publications(recording), result.publications)
    assert comparison.verdict == "identical", comparison.summary()
    outcome = json.loads((flight / "outcome.json").read_text())
    assert result.digest == outcome["runtime_digest"] == outcome["digest"]


def test_fast_replay_refuses_what_the_runtime_refused_for_the_same_reasons(
        flight: Path, recording: Recording) -> None:
    outcome = json.loads((flight / "outcome.json").read_text())
    assert {"duplicate", "out_of_order"} <= set(outcome["rejects"])  # the wire faults
    assert replay(recording).rejects == outcome["rejects"]


def test_replay_through_a_child_runtime_reapplies_the_model_faults(
        recording: Recording) -> None:
    result = replay(recording, bus=BusTarget())
    comparison = compare(recorded_publications(recording), result.publications)
    assert comparison.verdict == "identical", comparison.summary()


def test_the_in_process_twin_publishes_what_the_bus_run_did(
        flight: Path, recording: Recording) -> None:
    twin = fly_faulted(L2, draw_case(SEED), load_plan(PLAN))
    outcome = json.loads((flight / "outcome.json").read_text())
    assert twin.record.digest == outcome["runtime_digest"]
    assert [(a.t_ns, a.fault, a.detail) for a in twin.log] == [
        (a.t_ns, a.fault, a.detail) for a in recorded_log(recording)]
    assert not twin.non_finite and outcome["rejects"] == twin.record.rejects


def test_same_seed_same_log_another_seed_another(tmp_path: Path,
                                                 recording: Recording) -> None:
    reseeded = tmp_path / "plan.toml"
    reseeded.write_text(PLAN.read_text().replace("seed = 5", "seed = 6"))
    other = fly_faulted(L2, draw_case(SEED), load_plan(reseeded), duration_ns=21_500_000_000)
    same = fly_faulted(L2, draw_case(SEED), load_plan(PLAN), duration_ns=21_500_000_000)
    recorded = [a for a in recorded_log(recording) if a.t_ns < 21_500_000_000]
    assert same.log == recorded
    assert other.log != same.log
