"""Faults in recordings: the plan as metadata, every application on a ``fault`` channel.

* Metadata ``flightai.faults``: ``plan_path``, ``plan_toml`` (the plan file's
  text), ``seed``, ``horizon_ns`` (the mission time model faults were expanded
  to) and ``injections`` (JSON: the jobs the model faults hit, as handed to the
  runtime).
* Channel ``fault`` (direction ``bench``, msgpack like every channel): one
  message per application, ``t_ns`` the frame instant (or the release for a
  model fault), header fields ``fault``, ``kind``, ``target``, ``detail``.

Sensor and transport faults act before the runtime, so their effect is in the
recorded ``to_runtime`` messages themselves; model faults act inside it, so a
replay rebuilds them from the recorded plan (:func:`recorded_injections`) and
checks they are the jobs the live run was given.
"""

from __future__ import annotations

import json
import sys
from typing import Protocol

from flightai.bus.wire import encode
from flightai.config.schema import MissionConfig
from flightai.inject import Injections, parse_injections
from hil.faults.log import Applied
from hil.faults.models import model_injections
from hil.faults.plan import FaultPlan, parse_plan
from hil.record.reader import Recording

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

META_FAULTS = "flightai.faults"
FAULT_TOPIC = "fault"
BENCH = "bench"


class _Records(Protocol):
    def record(self, frames: list[bytes], direction: str = ...,
               log_time_ns: int | None = ...) -> bool: ...

    def add_metadata(self, name: str, data: dict[str, str]) -> None: ...


class FaultChannel:
    """Writes the plan and each application to a recording.

    Args:
        recorder: a :class:`~hil.record.recorder.Recorder`.
        plan: the plan flown.
        injections: the model-fault jobs given to the runtime.
        horizon_ns: the mission time the model faults were expanded to.
    """

    def __init__(self, recorder: _Records, plan: FaultPlan, injections: Injections,
                 horizon_ns: int) -> None:
        self._recorder = recorder
        self._seq = 0
        recorder.add_metadata(META_FAULTS, {
            "plan_path": plan.path, "plan_toml": plan.text, "seed": str(plan.seed),
            "horizon_ns": str(horizon_ns), "injections": json.dumps(injections.to_json())})

    def __call__(self, applied: Applied) -> None:
        """Record one application."""
        frames = encode(FAULT_TOPIC, self._seq, applied.t_ns, (), applied.fields())
        self._seq += 1
        self._recorder.record(frames, BENCH)


def recorded_plan(recording: Recording) -> FaultPlan | None:
    """The plan a recording was made with (None: no faults)."""
    meta = recording.metadata.get(META_FAULTS)
    if meta is None:
        return None
    text = meta["plan_toml"]
    return parse_plan(tomllib.loads(text), text, meta.get("plan_path", "<plan>"))


def recorded_log(recording: Recording) -> list[Applied]:
    """Every recorded application, in time order."""
    applied = [Applied.from_fields(m.t_ns, dict(m.fields))
               for r in recording.messages if r.topic == FAULT_TOPIC and r.direction == BENCH
               for m in (r.decode(),)]
    return sorted(applied, key=lambda a: a.t_ns)


def recorded_injections(recording: Recording, config: MissionConfig) -> Injections:
    """The model-fault jobs to re-apply when replaying a recording (none without a plan).

    Rebuilt from the recorded plan and the mission's schedule, and checked
    against the jobs recorded as given to the live runtime.

    Raises:
        ValueError: the rebuilt jobs differ from the recorded ones (another
            mission, or a plan the recording does not hold as flown).
    """
    plan = recorded_plan(recording)
    if plan is None:
        return Injections()
    meta = recording.metadata[META_FAULTS]
    injections, _ = model_injections(plan, config, int(meta["horizon_ns"]))
    recorded = parse_injections(json.loads(meta["injections"]), config, META_FAULTS)
    if injections != recorded:
        raise ValueError("the recorded fault plan gives other model-fault jobs on this "
                         "mission than the recorded run was given: replay with its mission")
    return injections
