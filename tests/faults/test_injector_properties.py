"""Property: any plan of sensor and transport faults, on any seed, keeps the wire accountable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flightai.bus.inbound import InboundChecks
from flightai.config.loader import load_mission
from flightai.sched.io import Sample
from flightai.timebase import NS_PER_MS
from hil.faults.injector import Injector
from hil.faults.plan import parse_plan

L2 = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "l2.toml"
CONFIG = load_mission(L2)
KINDS = ["dropout", "stuck", "bias", "noise", "delay", "out_of_order", "corrupt", "drop",
         "duplicate", "reorder"]
PARAMS = {"bias": {"offset": 2.0}, "noise": {"sigma": 1.0}, "delay": {"delay_ms": 30}}
FRAMES = 30

faults = st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(["imu.dv", "altimeter.range"]),
                            st.integers(0, 20), st.integers(1, 15),
                            st.sampled_from([0.3, 0.7, 1.0])), max_size=5)


def _samples(t_ms: int) -> list[Sample]:
    out = [Sample("imu.dv", t_ms * NS_PER_MS, np.full(3, float(t_ms)))]
    if t_ms % 20 == 0:
        out.append(Sample("altimeter.range", t_ms * NS_PER_MS, np.array([t_ms], np.float32)))
    return out


def _fly(entries: list[tuple[str, str, int, int, float]], seed: int):
    data = {"seed": seed, "faults": [
        {"name": f"f{i}", "kind": kind, "target": target, "start_ms": 10 * start,
         "end_ms": 10 * (start + length), "probability": p, "params": PARAMS.get(kind, {})}
        for i, (kind, target, start, length, p) in enumerate(entries)]}
    injector = Injector(parse_plan(data), CONFIG)
    checks = InboundChecks({s.name: s for s in CONFIG.signals if s.input}, 1 << 22)
    sent = accepted = 0
    for k in range(FRAMES):
        for frames in injector.messages_for(10 * k * NS_PER_MS, _samples(10 * k)):
            sent += 1
            accepted += checks.check(frames) is not None
    return injector.log, sent, accepted, dict(checks.rejects)


@settings(max_examples=40, deadline=None)
@given(faults, st.integers(0, 2**32 - 1))
def test_any_plan_runs_repeats_exactly_and_sensor_faults_keep_the_wire_valid(
        entries: list[tuple[str, str, int, int, float]], seed: int) -> None:
    log, sent, accepted, rejects = _fly(entries, seed)
    assert sent == accepted + sum(rejects.values())
    assert (log, sent, accepted, rejects) == _fly(entries, seed)
    if not any(kind in ("corrupt", "duplicate", "reorder") for kind, *_ in entries):
        assert not rejects  # sensor faults change values and times, never the wire
    assert all(a.t_ns % (10 * NS_PER_MS) == 0 for a in log)
