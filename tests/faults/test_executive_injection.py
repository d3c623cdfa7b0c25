"""The executive's side of fault injection: NaN outputs before the guards, input timeouts."""

from __future__ import annotations

import numpy as np

from flightai.runtime import build_executive
from flightai.sched.clock import FastClock
from flightai.sched.executive import NanOutput
from flightai.sched.io import ListSource, MemorySink, Sample
from flightai.timebase import NS_PER_MS
from tests.conftest import base_mission


def _run(config, source=None, **kwargs):
    sink = MemorySink()
    executive = build_executive(config, clock=FastClock(), sinks=[sink], source=source,
                                **kwargs)
    executive.run(200 * NS_PER_MS)
    return executive, sink


def test_injected_nan_is_caught_by_the_finite_guard_and_held(make_mission) -> None:
    data = base_mission()
    data["guards"] = [{"signal": "y", "finite": True}]
    executive, sink = _run(make_mission(data), injected_nan=[NanOutput("t", 40 * NS_PER_MS)])
    t = executive.health.tasks["t"]
    assert (t.guard_trips, t.held) == (1, 1)
    status = {p.t_release_ns // NS_PER_MS: p.status for p in sink.publications}
    assert status[40] == "held" and status[20] == status[60] == "ok"
    assert all(np.isfinite(p.outputs[0][1]).all() for p in sink.publications)
    (trip,) = [e for e in sink.events if e.kind == "guard_trip"]
    assert trip.detail == "y: non-finite value" and trip.t_ns == 60 * NS_PER_MS


def test_without_a_guard_the_injected_nan_would_be_published(make_mission) -> None:
    _, sink = _run(make_mission(base_mission()), injected_nan=[NanOutput("t", 40 * NS_PER_MS)])
    nan = [p.t_release_ns // NS_PER_MS for p in sink.publications
           if np.isnan(p.outputs[0][1]).any()]
    assert nan == [40]


def _samples(gap_ms: range) -> ListSource:
    return ListSource(Sample("x", t * NS_PER_MS, np.array([t], np.float32))
                      for t in range(0, 200, 10) if t not in gap_ms)


def test_an_input_silent_beyond_its_max_age_times_out_once_per_outage(make_mission) -> None:
    data = base_mission()
    data["signals"][0]["max_age_ms"] = 20
    executive, sink = _run(make_mission(data), _samples(range(50, 100)))
    assert executive.health.input_timeouts == 1
    assert executive.health.snapshot()["input_timeouts"] == 1
    events = [(e.kind, e.t_ns // NS_PER_MS, e.detail) for e in sink.events
              if e.kind.startswith("input_")]
    assert events == [("input_timeout", 70, "x: no sample since 40000000 ns"),
                      ("input_resumed", 100, "x")]


def test_no_timeout_without_max_age_or_before_the_first_sample(make_mission) -> None:
    executive, _ = _run(make_mission(base_mission()), _samples(range(50, 100)))
    assert executive.health.input_timeouts == 0
    data = base_mission()
    data["signals"][0]["max_age_ms"] = 20
    executive, _ = _run(make_mission(data), _samples(range(0, 100)))
    assert executive.health.input_timeouts == 0


def test_a_short_max_age_input_starting_late_is_still_watched(make_mission) -> None:
    """The watch runs only when an input may have gone silent: a signal whose first sample
    comes after another's, with a shorter max age, must move that instant earlier."""
    data = base_mission()
    data["signals"][0]["max_age_ms"] = 1000
    data["signals"].insert(1, {"name": "w", "dtype": "float32", "shape": [1], "input": True,
                               "max_age_ms": 20})
    samples = [Sample("x", t * NS_PER_MS, np.array([t], np.float32)) for t in range(0, 200, 10)]
    samples += [Sample("w", t * NS_PER_MS, np.array([t], np.float32)) for t in (50, 60)]
    _, sink = _run(make_mission(data), ListSource(samples))
    events = [(e.kind, e.t_ns // NS_PER_MS, e.detail) for e in sink.events
              if e.kind.startswith("input_")]
    assert events == [("input_timeout", 90, "w: no sample since 60000000 ns")]
