"""Sensor and transport faults on synthetic samples, checked by the runtime's own bus checks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from flightai.bus.inbound import InboundChecks
from flightai.config.loader import load_mission
from flightai.sched.io import Sample
from flightai.timebase import NS_PER_MS
from hil.faults.injector import Injector
from hil.faults.plan import parse_plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"
FRAME_NS = 10 * NS_PER_MS


@pytest.fixture(scope="module")
def config():
    return load_mission(L2)


def _plan(faults: str, seed: int = 1):
    text = f"seed = {seed}\n{faults}"
    return parse_plan(tomllib.loads(text), text)


def _fault(kind: str, target: str = "imu.dv", extra: str = "") -> str:
    return (f'[[faults]]\nname = "f-{kind}"\nkind = "{kind}"\ntarget = "{target}"\n'
            f"start_ms = 100\nend_ms = 200\n{extra}\n")


def _imu(t_ns: int) -> Sample:
    return Sample("imu.dv", t_ns, np.full(3, t_ns / 1e9))


def _run(config, plan, frames: int = 40):
    """Send 40 frames of one imu.dv sample each; what the bus checks accept, frame by frame."""
    injector = Injector(plan, config)
    checks = InboundChecks({s.name: s for s in config.signals if s.input}, 1 << 22)
    accepted = []
    for k in range(frames):
        t_ns = k * FRAME_NS
        for frames_ in injector.messages_for(t_ns, [_imu(t_ns)]):
            message = checks.check(frames_)
            if message is not None:
                accepted.append((t_ns, message))
    return injector, checks, accepted


def test_no_fault_sends_every_sample_as_the_client_would(config) -> None:
    injector, checks, accepted = _run(config, _plan(""))
    assert [m.seq for _, m in accepted] == list(range(40)) and not checks.rejects
    assert all(m.t_ns == t for t, m in accepted) and not injector.log


@pytest.mark.parametrize("mode, reason", [
    ("truncate", "bad_frame_length"), ("bad_msgpack", "malformed"), ("wrong_dtype", "bad_dtype"),
    ("wrong_shape", "bad_shape"), ("extra_frame", "bad_frame_count")])
def test_each_corruption_is_refused_for_its_reason(config, mode: str, reason: str) -> None:
    plan = _plan(_fault("corrupt", extra=f'params = {{ modes = ["{mode}"] }}'))
    injector, checks, accepted = _run(config, plan)
    assert dict(checks.rejects) == {reason: 10} and len(injector.log) == 10
    assert {a.detail.rsplit(", ", 1)[1] for a in injector.log} == {mode}
    assert all(not 100 <= m.t_ns // NS_PER_MS < 200 for _, m in accepted)


def test_transport_drop_duplicate_reorder_show_in_the_sequence_checks(config) -> None:
    injector, checks, _ = _run(config, _plan(_fault("drop")))
    assert checks.gaps == len(injector.log) == 10 and not checks.rejects
    injector, checks, accepted = _run(config, _plan(_fault("duplicate")))
    assert dict(checks.rejects) == {"duplicate": 10} and len(accepted) == 40
    plan = _plan(_fault("reorder", extra="probability = 0.5"))
    injector, checks, accepted = _run(config, plan)
    assert dict(checks.rejects) == {"out_of_order": len(injector.log)} and injector.log
    assert len(accepted) == 40 - len(injector.log)


def test_delay_and_out_of_order_send_a_sample_later_with_its_own_time(config) -> None:
    _, _, accepted = _run(config, _plan(_fault("delay", extra="params = { delay_ms = 50 }")))
    late = [(t, m.t_ns) for t, m in accepted if t - m.t_ns > 0]
    assert late == [(t + 50 * NS_PER_MS, t) for t in range(100 * NS_PER_MS, 200 * NS_PER_MS,
                                                             FRAME_NS)]
    _, _, accepted = _run(config, _plan(_fault("out_of_order")))
    times = [m.t_ns for _, m in accepted]
    assert sorted(times) == list(range(0, 400 * NS_PER_MS, FRAME_NS))
    assert times.index(190 * NS_PER_MS) > times.index(200 * NS_PER_MS)  # older after newer
    assert [m.seq for _, m in accepted] == list(range(40))  # the wire order is intact


def test_value_faults(config) -> None:
    _, _, accepted = _run(config, _plan(_fault("stuck")))
    values = {t: m.arrays[0][1][0] for t, m in accepted}
    assert {values[t * NS_PER_MS] for t in range(100, 200, 10)} == {0.09}
    _, _, accepted = _run(config, _plan(_fault("bias", extra="params = { offset = [1, 2, 3] }")))
    biased = {t: m.arrays[0][1] for t, m in accepted}
    assert biased[150 * NS_PER_MS].tolist() == [1.15, 2.15, 3.15]
    assert biased[200 * NS_PER_MS].tolist() == [0.2] * 3
    _, _, accepted = _run(config, _plan(_fault("noise", extra="params = { sigma = 2.0 }")))
    noisy = np.array([m.arrays[0][1] - m.t_ns / 1e9 for _, m in accepted])
    assert np.abs(noisy[10:20]).min() > 0 and not noisy[:10].any() and not noisy[20:].any()
    injector, _, accepted = _run(config, _plan(_fault("dropout", extra="probability = 0.5")))
    assert len(accepted) == 40 - len(injector.log) and 0 < len(injector.log) < 10


PROBABLE = (_fault("dropout", extra="probability = 0.5")
            + _fault("corrupt", extra="probability = 0.5").replace("f-corrupt", "c"))


def test_same_seed_same_log_other_seed_other_log_and_faults_do_not_shift_each_other(
        config) -> None:
    one = _run(config, _plan(PROBABLE, seed=4))[0].log
    assert one == _run(config, _plan(PROBABLE, seed=4))[0].log
    assert one != _run(config, _plan(PROBABLE, seed=5))[0].log
    dropout_alone = _run(config, _plan(PROBABLE.split("[[faults]]\nname = \"c\"")[0], seed=4))
    assert [a for a in one if a.fault == "f-dropout"] == dropout_alone[0].log
